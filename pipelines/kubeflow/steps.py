"""The pipeline's steps: bodies of lightweight Python components, one per function.

KFP ships each function's source on its own (no module globals), so every body imports what
it uses. Each step loads the preset with the run's overrides
(:func:`unmixlab.experiment.load_preset`) and, when it reads the data set, points
``data.root`` at the input ``Dataset``, the same override ``unmixlab run study --root`` makes.
MLflow settings come from the environment (``MLFLOW_TRACKING_URI``), as for the CLI.
"""

from typing import NamedTuple

from kfp import dsl


def synth_data(preset: str, overrides: list, data: dsl.Output[dsl.Dataset]):
    """Write the preset's synthetic MUSDB18-HQ data set (its ``data.synth``) into ``data``."""
    from unmixlab.errors import UnmixlabError
    from unmixlab.experiment import load_preset
    from unmixlab.steps.prepare import synthesize_data

    config = load_preset(preset, overrides)
    if config.data.synth is None:
        raise UnmixlabError(
            f"preset '{config.name}' has no data.synth to make a data set from",
            "Compile the pipeline with --data-uri <MUSDB18-HQ folder in the object store>",
        )
    synthesize_data(data.path, config.data.synth)
    data.metadata.update(config.data.synth.model_dump(mode="json"))


def prepare_data(preset: str, overrides: list, data: dsl.Input[dsl.Dataset]) -> list:
    """Check the data set and decode it into its cache once; return the preset's targets."""
    from unmixlab.experiment import load_preset
    from unmixlab.steps.prepare import prepare_data

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    prepared = prepare_data(config.data_config())
    print(
        f"prepared {len(prepared.train)} train + {len(prepared.valid)} valid tracks "
        f"(fingerprint {prepared.fingerprint}); targets {list(config.targets)}"
    )
    return list(config.targets)


def train_target(
    preset: str,
    overrides: list,
    target: str,
    data: dsl.Input[dsl.Dataset],
    model: dsl.Output[dsl.Model],
):
    """Train one target into ``model`` (reference layout); unsent metrics fail the step."""
    from pathlib import Path

    from unmixlab.experiment import load_preset
    from unmixlab.steps.train import train_model
    from unmixlab.tracking.schema import ORCHESTRATOR_TAG

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    trained = train_model(
        config.train_config(target, Path(model.path)),
        experiment=config.experiment,
        preset=config.name,
        tags={ORCHESTRATOR_TAG: "kubeflow"},
    )
    model.metadata.update(trained.as_metadata())


def evaluate_model(
    preset: str,
    overrides: list,
    target: str,
    data: dsl.Input[dsl.Dataset],
    model: dsl.Input[dsl.Model],
    scores: dsl.Output[dsl.Metrics],
    tables: dsl.Output[dsl.Artifact],
):
    """Score the test tracks with every evaluate setting; log to the training's MLflow run."""
    import math
    from pathlib import Path

    from unmixlab.evaluate import scores_markdown
    from unmixlab.experiment import load_preset
    from unmixlab.steps.evaluate import evaluate_models
    from unmixlab.steps.train import TrainedModel

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    trained = TrainedModel.from_metadata(model.metadata, Path(model.path))
    evaluation = evaluate_models(
        config.evaluate, config.data_config(), [trained], Path(tables.path)
    )
    for metric, value in evaluation.aggregate[target].items():
        if not math.isnan(value):
            scores.log_metric(f"{metric.lower()}_{target}", value)
    print(scores_markdown(evaluation.aggregate))


def promote_model(preset: str, overrides: list, target: str, scores: dsl.Input[dsl.Metrics]) -> str:
    """Register the experiment's best ``target`` model; move ``champion`` if it wins."""
    from unmixlab.experiment import load_preset
    from unmixlab.steps.promote import promote

    config = load_preset(preset, overrides)
    promotion = promote(config.promote, config.experiment, target)
    return f"{promotion.model_name} v{promotion.version}: {promotion.decision}"


def start_study(
    preset: str, overrides: list, data: dsl.Input[dsl.Dataset], output_dir: str
) -> NamedTuple(
    "StudyStart",
    [("parent_run_id", str), ("run_dir", str), ("key", str), ("costs", str), ("started", float)],
):  # fmt: skip
    """Time every configuration of the study and open its MLflow run."""
    import time
    from collections import namedtuple
    from pathlib import Path

    from unmixlab.experiment import load_preset
    from unmixlab.steps.parent import start_parent_run
    from unmixlab.steps.prepare import prepare_data
    from unmixlab.study import conduct, plan
    from unmixlab.study_steps import costs_to_json, study_key
    from unmixlab.tracking.schema import DATASET_FINGERPRINT_TAG, ORCHESTRATOR_TAG, STUDY_TAG

    started = time.time()
    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    prepared = prepare_data(config.data_config())
    run_dir = Path(output_dir).resolve() / time.strftime("%Y%m%d-%H%M%S")
    planned = plan(config, run_dir / "models", len(prepared.train))
    analysis = config.study.analysis
    costs = conduct.timing_pass(
        planned, analysis.timing_repeats, analysis.timing_warmup, analysis.order_seed
    )
    tags = {
        STUDY_TAG: config.name,
        ORCHESTRATOR_TAG: "kubeflow",
        DATASET_FINGERPRINT_TAG: prepared.fingerprint,
    }
    parent = start_parent_run(config, f"study {config.name} kubeflow", tags)
    key = study_key(config, prepared.fingerprint)
    outputs = namedtuple("StudyStart", "parent_run_id run_dir key costs started")
    return outputs(parent.run_id, str(run_dir), key, costs_to_json(costs), started)


def missing_trainings(
    preset: str,
    overrides: list,
    data: dsl.Input[dsl.Dataset],
    parent_run_id: str,
    run_dir: str,
    key: str,
) -> list:
    """The study's trainings without a complete run in MLflow: a rerun trains only these.

    Each item carries the study run, folder and key beside the training: a ``ParallelFor``
    iteration reads all it needs from its item.
    """
    from dataclasses import asdict
    from pathlib import Path

    from unmixlab.experiment import load_preset
    from unmixlab.steps.prepare import prepare_data
    from unmixlab.study import plan
    from unmixlab.study_steps import missing_runs, ordered
    from unmixlab.tracking.parent_run import ParentRun
    from unmixlab.tracking.study_runs import study_records

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    prepared = prepare_data(config.data_config())
    trainings = ordered(config, plan(config, Path(run_dir) / "models", len(prepared.train)))
    records = study_records(ParentRun.of(parent_run_id).experiment_id, key)
    todo = missing_runs(trainings, records)
    print(f"study {config.name}: {len(todo)} of {len(trainings)} trainings to make (key {key})")
    study = {"parent_run_id": parent_run_id, "run_dir": run_dir, "key": key}
    return [asdict(training) | study for training in todo]


def train_study_run(preset: str, overrides: list, training: dict, data: dsl.Input[dsl.Dataset]):
    """Train, score, stream and record one item of :func:`missing_trainings`."""
    from pathlib import Path

    from unmixlab.experiment import load_preset
    from unmixlab.steps.prepare import prepare_data
    from unmixlab.study_steps import Training
    from unmixlab.study_steps import train_study_run as train_one

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    prepared = prepare_data(config.data_config())
    which = Training(training["configuration"], int(training["seed"]), int(training["position"]))
    record = train_one(
        config, preset, overrides, which, prepared, training["parent_run_id"],
        Path(training["run_dir"]), training["key"],
    )  # fmt: skip
    print(f"{which}: MLflow run {record.run_id} in {record.clock.wall_seconds:.0f} s")


def report_study(
    preset: str,
    overrides: list,
    data: dsl.Input[dsl.Dataset],
    parent_run_id: str,
    run_dir: str,
    costs: str,
    started: float,
) -> str:
    """Read every training back, decide the verdicts, write and log the report; end the run."""
    import time
    from pathlib import Path

    from unmixlab.experiment import load_preset
    from unmixlab.steps.prepare import prepare_data
    from unmixlab.study_steps import costs_from_json
    from unmixlab.study_steps import report_study as report_step
    from unmixlab.tracking.parent_run import ParentRun
    from unmixlab.tracking.schema import STUDY_SECONDS

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    prepared = prepare_data(config.data_config())
    parent = ParentRun.of(parent_run_id)
    report = report_step(
        config, preset, overrides, prepared, parent, costs_from_json(costs), Path(run_dir), started
    )
    parent.end("FINISHED", None, {STUDY_SECONDS: time.time() - started})
    lines = [f"{v.key} ({v.outcome}): {v.sentence}" for v in report.verdicts]
    print("\n".join([*lines, f"report: {report.files.html}"]))
    return "\n".join(lines)
