"""The pipeline's steps: bodies of lightweight Python components, one per function.

KFP ships each function's source on its own (no module globals), so every body imports what
it uses. Each step loads the preset with the run's overrides
(:func:`unmixlab.experiment.load_preset`) and, when it reads the data set, points
``data.root`` at the input ``Dataset``, the same override ``unmixlab run study --root`` makes.
MLflow settings come from the environment (``MLFLOW_TRACKING_URI``), as for the CLI.
"""

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
