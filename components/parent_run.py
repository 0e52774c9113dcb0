"""Prefect tasks around a flow's parent MLflow run: open it first, close it last.

The targets' training runs nest under it; it holds the experiment settings (params and
``experiment.json``), the evaluation tables and the final status of the flow. The run's
lifecycle is :class:`unmixlab.tracking.parent_run.ParentRun`'s; these tasks add Prefect's
retries on transient tracking failures.
"""

from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.steps.parent import start_parent_run as start_run
from unmixlab.tracking.parent_run import ParentRun

RETRY = retry_transient()


@task(name="start_parent_run", **RETRY)
def start_parent_run(config: ExperimentConfig, run_name: str, tags: dict[str, str]) -> ParentRun:
    """Create the parent run in ``config.experiment`` with the settings as params.

    Raises:
        UnmixlabError: the tracking store is unreachable (retried) or the experiment deleted.
    """
    return start_run(config, run_name, tags)


@task(name="end_parent_run", **RETRY)
def end_parent_run(
    parent: ParentRun,
    status: str,
    metrics: dict[str, float] | None = None,
    error: str | None = None,
) -> None:
    """Log the flow's summary ``metrics`` and mark the run ``status`` (FINISHED, FAILED, KILLED)."""
    parent.end(status, error, metrics)
