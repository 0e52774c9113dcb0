"""Prefect task ``record_study_run``: mark a training as one (configuration, seed) of a study."""

from mlflow.tracking import MlflowClient
from prefect import task

from components.runtime import retry_transient
from unmixlab.study import record_run
from unmixlab.tracking.setup import resolve_tracking_uri


@task(name="record_study_run", **retry_transient())
def record_study_run(
    run_id: str, study: str, configuration: str, seed: int, chunks_per_epoch: int
) -> float:
    """Tag a training as the study's ``configuration``/``seed``; log its training-pass times.

    Returns:
        The training seconds (training passes only) of the run.
    """
    return record_run(
        MlflowClient(resolve_tracking_uri()),
        run_id,
        study=study,
        configuration=configuration,
        seed=seed,
        chunks_per_epoch=chunks_per_epoch,
    )
