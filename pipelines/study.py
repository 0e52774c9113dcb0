"""The ``study`` flow: the seed study's configurations side by side, and one report.

(synthesise) → prepare once → plan (budget epochs from the training tracks) → timing pass
(cost per training sample of every configuration) → the (configuration, seed) trainings in a
seeded random, interleaved order: each a ``study_run`` (train in a nested MLflow run, score,
stream unidirectional models, record its clocks and the machine's load) → paced streams, the
bidirectional offline cost and the baselines → read every run back from MLflow → verdicts
under the preset's analysis plan → HTML + markdown report on the parent run and as a Prefect
artifact.

Where the trainings run is ``study.workers`` and ``study.deployment``:

- ``workers: 1`` (the CPU presets): one after another in this process, so that trainings do
  not slow each other; the random order keeps load from lining up with configurations.
- ``workers: N``: N worker processes here, sharing the CPU cores; ``workers: 0`` gives one
  process per visible GPU, each seeing its own.
- ``deployment: study-training/<name>``: each training is a run of that deployment of the
  ``study-training`` flow, picked up by any worker of its work pool (``prefect.yaml``), at
  most ``workers`` at once (0: all). Workers need the study's data and output folder at the
  same paths (one machine, or shared storage).

A rerun of an interrupted study trains only what has no complete run in MLflow
(:mod:`unmixlab.study_steps`); the seeds, and so the losses, do not depend on where a
training ran.
"""

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.deployments import run_deployment
from prefect.futures import as_completed
from prefect.runtime import flow_run

from components.parent_run import end_parent_run, start_parent_run
from components.prepare_data import prepare_data
from components.report_study import report_study
from components.study_run import study_run, worker_processes
from components.synthesize import synthesize
from unmixlab.device import visible_gpu_count
from unmixlab.errors import UnmixlabError
from unmixlab.experiment import load_preset
from unmixlab.progress import tqdm
from unmixlab.study import conduct, expand, plan
from unmixlab.study.report import ReportFiles
from unmixlab.study.verdicts import Verdict
from unmixlab.study_steps import Training, missing_runs, ordered, study_key
from unmixlab.tracking.links import run_url
from unmixlab.tracking.parent_run import failure
from unmixlab.tracking.schema import (
    DATASET_FINGERPRINT_TAG,
    PREFECT_FLOW_RUN_TAG,
    RUNS,
    STUDY_SECONDS,
    STUDY_TAG,
)
from unmixlab.tracking.study_runs import study_records


@dataclass(frozen=True)
class StudySummary:
    """What one ``study`` flow run produced, and where to find it."""

    preset: str
    flow_run_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    parent_run_url: str
    trained: int  # trainings this run made (a rerun reuses the complete ones)
    total: int  # the study's trainings
    verdicts: list[Verdict]
    report: ReportFiles
    seconds: float


@flow(name="study")
def study(
    preset: str = "seed-study", overrides: list[str] | None = None, seeds: int | None = None
) -> StudySummary:
    """Run every configuration of a preset's study (each with its seeds) and report on them.

    Args:
        preset: a preset name (``seed-study``, ``seed-study-quick``, ...) or a YAML file.
        overrides: ``key=value`` settings, e.g. ``data.root=/data/musdb18``.
        seeds: seeds per configuration (overrides ``study.seeds``).

    Returns:
        The runs, the verdicts and the report.

    Raises:
        UnmixlabError: a bad preset or override, or bad data (at ``prepare_data``).
    """
    started = time.time()
    logger = get_run_logger()
    overrides = [*(overrides or []), *([f"study.seeds={seeds}"] if seeds else [])]
    config = load_preset(preset, overrides)
    name = flow_run.get_name() or "local"
    run_dir = Path(config.output) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"

    if config.data.synth is not None:
        synthesize(config.data.root, config.data.synth)
    prepared = prepare_data(config.data_config())  # one decoded cache for every run
    planned = plan(config, run_dir / "models", len(prepared.train))
    analysis = config.study.analysis
    key = study_key(config, prepared.fingerprint)
    logger.info(
        "study %s: %d configurations x %d seed(s) = %d trainings of %s, outputs in %s",
        config.name,
        len(expand(config.study)),
        config.study.seeds,
        len(planned),
        config.targets[0],
        run_dir,
    )
    costs = conduct.timing_pass(
        planned, analysis.timing_repeats, analysis.timing_warmup, analysis.order_seed
    )
    parent = start_parent_run(
        config,
        run_name=f"study {config.name} {name}",
        tags={
            STUDY_TAG: config.name,
            PREFECT_FLOW_RUN_TAG: name,
            DATASET_FINGERPRINT_TAG: prepared.fingerprint,
        },
    )
    try:
        trainings = ordered(config, planned)
        todo = missing_runs(trainings, study_records(parent.experiment_id, key))
        logger.info(
            "%d of %d trainings are complete from an earlier run of this study (key %s); "
            "training %d",
            len(trainings) - len(todo),
            len(trainings),
            key,
            len(todo),
        )
        run_trainings(
            config.study.workers,
            config.study.deployment,
            todo,
            len(trainings),
            {
                "preset": preset,
                "overrides": overrides,
                "parent_run_id": parent.run_id,
                "run_dir": run_dir,
                "key": key,
            },
        )
        report = report_study(config, preset, overrides, prepared, parent, costs, run_dir, started)
    except BaseException as error:
        status, message = failure(error)
        end_parent_run(parent, status, error=message, return_state=True)  # keeps the first error
        raise
    seconds = time.time() - started
    end_parent_run(parent, "FINISHED", {STUDY_SECONDS: seconds, RUNS: len(todo)})

    parent_url = run_url(parent.tracking_uri, parent.experiment_id, parent.run_id)
    create_markdown_artifact(
        markdown=report.summary_markdown
        + f"\n\nThe full report with its plots: `{report.files.html}`, and the artifacts "
        f"`report/` of MLflow run [{parent.run_id}]({parent_url}).\n",
        key=re.sub(r"[^a-z0-9-]+", "-", f"study-{config.name}".lower()),
        description=f"Verdicts and results of the '{config.name}' study",
    )
    for verdict in report.verdicts:
        logger.info("%s (%s): %s", verdict.key, verdict.outcome, verdict.sentence)
    logger.info("report: %s", report.files.html)
    return StudySummary(
        preset=config.name,
        flow_run_name=name,
        tracking_uri=parent.tracking_uri,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        parent_run_url=parent_url,
        trained=len(todo),
        total=len(trainings),
        verdicts=report.verdicts,
        report=report.files,
        seconds=seconds,
    )


@flow(name="study-training")
def study_training(
    preset: str,
    overrides: list[str],
    training: Training,
    parent_run_id: str,
    run_dir: Path,
    key: str,
) -> str:
    """One training of a study, as a deployment's flow run on any worker of its pool.

    The study flow creates these runs when its preset sets ``study.deployment``.

    Returns:
        The training's MLflow run.
    """
    record = study_run(preset, overrides, training, parent_run_id, run_dir, key)
    return record.run_id


def run_trainings(
    workers: int, deployment: str | None, todo: list[Training], total: int, arguments: dict
) -> None:
    """Run ``todo`` here, on worker processes, or as deployment runs (module docstring).

    Args:
        workers: trainings at once (see ``study.workers``).
        deployment: the ``study-training`` deployment to run them on, or None.
        todo: the trainings, in study order.
        total: the study's trainings (the progress bar counts the complete ones too).
        arguments: :func:`study_run`'s other arguments.

    Raises:
        UnmixlabError: a deployment run did not complete (the study's rerun trains only the
            missing ones).
    """
    done = total - len(todo)
    label = f"study {Path(arguments['preset']).stem}"  # a preset's name, or its YAML file's
    with tqdm(total=total, initial=done, desc=label, unit="run") as overall:
        if deployment is not None:
            _on_deployment(deployment, workers or len(todo) or 1, todo, arguments, overall)
            return
        gpus = visible_gpu_count()
        processes = workers or max(1, gpus)
        if processes == 1:
            for training in todo:
                overall.set_postfix_str(f"{training.configuration} seed {training.seed}")
                study_run(training=training, **arguments)
                overall.update()
            return
        with worker_processes(processes, gpus) as runner:
            futures = [
                runner.submit(study_run, {"training": training, **arguments}) for training in todo
            ]
            for future in as_completed(futures):
                future.result()  # raises the training's error
                overall.update()


def _on_deployment(
    deployment: str, at_once: int, todo: list[Training], arguments: dict, overall: tqdm
) -> None:
    """Each training a run of ``deployment``, at most ``at_once`` in flight; all must complete."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    parameters = arguments | {"run_dir": str(arguments["run_dir"])}
    with get_client(sync_client=True) as prefect:
        try:
            prefect.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise UnmixlabError(
                f"study.deployment: no deployment {deployment} on the Prefect API "
                f"{prefect.api_url}",
                "Deploy it (prefect deploy --name any-study) and point PREFECT_API_URL at "
                "that server; its workers then pick up the trainings",
            ) from None

    def one(training: Training) -> tuple[Training, object]:
        run = run_deployment(
            deployment,
            parameters=parameters | {"training": asdict(training)},
            flow_run_name=f"{training.configuration}-seed-{training.seed}",
            timeout=None,  # wait for it
            poll_interval=2,
            as_subflow=False,  # from a thread: no parent context to nest under
        )
        return training, run

    failed = []
    with ThreadPoolExecutor(at_once) as pool:
        for training, run in pool.map(one, todo):
            overall.update()
            if not run.state.is_completed():
                failed.append(f"{training.configuration} seed {training.seed} ({run.name}: "
                              f"{run.state.name})")  # fmt: skip
    if failed:
        raise UnmixlabError(
            f"{len(failed)} deployment run(s) of {deployment} did not complete: "
            + ", ".join(failed[:5]),
            "Read those flow runs' logs in the Prefect UI, then run the study again: it "
            "trains only the missing ones",
        )
