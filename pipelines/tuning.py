"""The ``tuning`` flow: (synthesise) → prepare once → Optuna study → report → (train the best).

Parameters are a preset name and ``key=value`` overrides; the ``tune`` section of the preset
(:class:`unmixlab.tuning.settings.TuneConfig`) says what to search. The data is prepared
(decoded into the cache) once, before any trial; every trial reads that cache. The study
lives in its storage (default ``./optuna.db``) and resumes there when the flow runs again
with the same study name. One parent MLflow run holds the study; each trial is a nested run.
With ``tune.train_best`` the best configuration is then trained in full, evaluated and
promoted by the ``training`` flow.
"""

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from components.prepare_data import prepare_data
from components.report_tuning import report_tuning
from components.run_trials import run_trials
from components.start_tuning import start_tuning
from components.synthesize import synthesize
from pipelines.training import TrainingSummary, training
from unmixlab.experiment import ExperimentConfig, load_preset
from unmixlab.render import render
from unmixlab.tracking.links import run_url
from unmixlab.tracking.parent_run import end_run, failure
from unmixlab.tracking.schema import BEST_TRAINING_RUN_TAG
from unmixlab.tracking.trials import client
from unmixlab.tuning.report import TuningOutcome
from unmixlab.tuning.search import finished_before
from unmixlab.tuning.storage import public_url, resolve_storage_url


@dataclass(frozen=True)
class TuningSummary:
    """What one ``tuning`` flow run produced, and where to look at it."""

    preset: str
    study_name: str
    storage: str  # without password
    parent_run_id: str
    parent_run_url: str
    report_dir: Path
    study: TuningOutcome
    best_training: TrainingSummary | None
    seconds: float

    def markdown(self) -> str:
        """Trial counts, the best trial (or Pareto front) and how to look further."""
        study = self.study
        names = list(study.objectives)
        pareto = (
            ["trial", *names, "params"],
            [
                [
                    str(point["number"]),
                    *(f"{point['values'][n]:.5g}" for n in names),
                    f"`{json.dumps(point['params'])}`",
                ]
                for point in study.pareto_front
            ],
        )
        return render(
            "tuning_summary.md.j2",
            s=self,
            states=", ".join(f"{n} {s.lower()}" for s, n in sorted(study.states.items())),
            pareto=pareto if study.pareto_front else None,
            best_values=", ".join(f"{k} {v:.5g}" for k, v in study.best_values.items()),
        )


@flow(name="tuning")
def tuning(preset: str = "tune-quickstart", overrides: list[str] | None = None) -> TuningSummary:
    """Search the preset's ``tune.space`` with Optuna, each trial a nested MLflow run.

    Args:
        preset: a preset name or a YAML file.
        overrides: ``key=value`` settings, e.g. ``tune.trials=8``, ``tune.objective=loss,rtf``.

    Returns:
        The study's outcome and where to find it.

    Raises:
        UnmixlabError: a bad preset, override or storage, or bad data (at ``prepare_data``).
    """
    start = time.perf_counter()
    logger = get_run_logger()
    overrides = list(overrides or [])
    config = load_preset(preset, overrides)
    tune = config.tune
    storage_url = resolve_storage_url(tune.storage)
    study_name = study_name_of(config)
    report_dir = Path(config.output) / "tuning" / study_name / "report"

    if config.data.synth is not None:
        synthesize(config.data.root, config.data.synth)
    prepared = prepare_data(config.data_config())  # the shared cache, before any trial
    was_finished = finished_before(storage_url, study_name)  # stays so if interrupted now
    spec = start_tuning(config, storage_url, study_name, target_of(config), prepared.fingerprint)
    logger.info(
        "study %s in %s: %d trials of %s on %d worker(s); follow it with optuna-dashboard %s",
        study_name,
        public_url(storage_url),
        tune.trials,
        spec.train.run.target,
        tune.workers,
        public_url(storage_url),
    )
    try:
        # a retry waits out the heartbeat grace, so a crashed worker's trial is failed first
        grace = tune.grace_seconds or 2 * tune.heartbeat_seconds
        run_trials.with_options(retries=1, retry_delay_seconds=grace)(
            storage_url, study_name, tune.workers
        )
        summary = report_tuning(storage_url, study_name, report_dir)
    except BaseException as error:
        status, message = failure(error)
        if status == "KILLED" and was_finished:  # an interrupted extension of a finished study
            status, message = "FINISHED", None
        end_run(client(), spec.parent_run_id, status, message)
        raise

    best_training = None
    if tune.train_best and summary.best_trial is not None:
        best = [f"train.{k}={json.dumps(v)}" for k, v in summary.best_params.items()]
        logger.info("training trial %d's configuration in full: %s", summary.best_trial, best)
        best_training = training(
            preset=preset,
            overrides=[*overrides, f"targets=[{spec.train.run.target}]", *best],
        )
        client().set_tag(spec.parent_run_id, BEST_TRAINING_RUN_TAG, best_training.parent_run_id)
    result = TuningSummary(
        preset=config.name,
        study_name=study_name,
        storage=public_url(storage_url),
        parent_run_id=spec.parent_run_id,
        parent_run_url=parent_run_url(spec.parent_run_id),
        report_dir=report_dir,
        study=summary,
        best_training=best_training,
        seconds=time.perf_counter() - start,
    )
    create_markdown_artifact(
        markdown=result.markdown(),
        key=re.sub(r"[^a-z0-9-]+", "-", f"tuning-{study_name}".lower()),
        description=f"Outcome of the Optuna study '{study_name}'",
    )
    logger.info(
        "study %s: %s; best trial %s; report in %s",
        study_name,
        ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.states.items())),
        summary.best_trial,
        report_dir,
    )
    return result


def parent_run_url(run_id: str) -> str:
    """The study's parent run in the MLflow UI."""
    mlflow_client = client()
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    return run_url(mlflow_client.tracking_uri, experiment_id, run_id)


def study_name_of(config: ExperimentConfig) -> str:
    """``tune.study_name``, else the preset's name."""
    return config.tune.study_name or config.name


def target_of(config: ExperimentConfig) -> str:
    """``tune.target``, else the preset's first target."""
    return config.tune.target or config.targets[0]
