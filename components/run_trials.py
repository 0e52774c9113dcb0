"""Prefect task ``run_trials``: the Optuna study's missing trials, on worker processes."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from unmixlab.tuning.search import run_workers


@task(name="run_trials", cache_policy=NO_CACHE)
def run_trials(storage_url: str, study_name: str, workers: int) -> None:
    """Run the study's missing trials on ``workers`` processes (a retry resumes the study).

    Not retried by default: the flow sets the retry, which must wait out the heartbeat
    grace so that a crashed worker's trial is failed first.
    """
    run_workers(storage_url, study_name, workers)
