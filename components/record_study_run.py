"""Prefect task ``record_study_run``: mark a training as one (configuration, seed) of a study."""

from prefect import task

from components.runtime import retry_transient
from unmixlab.tracking.study_runs import record_study_run as record


@task(name="record_study_run", **retry_transient())
def record_study_run(
    run_id: str, study: str, configuration: str, seed: int, chunks_per_epoch: int
) -> float:
    """Tag a training as the study's ``configuration``/``seed``; log its training-pass times.

    Returns:
        The training seconds (training passes only) of the run.
    """
    return record(
        run_id,
        study=study,
        configuration=configuration,
        seed=seed,
        chunks_per_epoch=chunks_per_epoch,
    )
