"""Prefect task ``start_tuning``: open the parent run, create (or resume) the Optuna study."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.tracking.schema import DATASET_FINGERPRINT_TAG, NOTE_TAG
from unmixlab.tracking.trials import describe_search_experiment
from unmixlab.tuning.search import start_search
from unmixlab.tuning.storage import TuningSearch


@task(name="start_tuning", **retry_transient())
def start_tuning(
    config: ExperimentConfig, storage_url: str, study_name: str, target: str, fingerprint: str
) -> TuningSearch:
    """Open the parent run and create (or resume) ``study_name`` from ``config.tune``.

    The parent run is tagged with the data set ``fingerprint``; it and the experiment are
    described by the preset.

    Args:
        config: the experiment; its ``tune`` section says what to search.
        storage_url: the study storage (with its password).
        study_name: the Optuna study.
        target: the target every trial trains.
        fingerprint: the prepared data's fingerprint.
    """
    trials_dir = Path(config.output) / "tuning" / study_name
    study = start_search(
        config.train_config(target, trials_dir),
        config.tune,
        study_name=study_name,
        experiment=config.experiment,
        storage_url=storage_url,
        trials_dir=trials_dir,
        preset=config.name,
        tags={DATASET_FINGERPRINT_TAG: fingerprint, NOTE_TAG: config.description},
    )
    describe_search_experiment(study.parent_run_id, config.name, config.description)
    return study
