"""Prefect tasks around a flow's parent MLflow run: open it first, close it last.

The targets' training runs nest under it; it holds the experiment settings (params and
``experiment.json``), the evaluation tables and the final status of the flow. The run's
lifecycle is :class:`unmixlab.tracking.parent_run.ParentRun`'s; these tasks add Prefect's
retries on transient tracking failures.
"""

from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.tracking.names import describe_experiment
from unmixlab.tracking.parent_run import ParentRun
from unmixlab.tracking.schema import NOTE_TAG, PRESET_TAG

RETRY = retry_transient()


@task(name="start_parent_run", **RETRY)
def start_parent_run(config: ExperimentConfig, run_name: str, tags: dict[str, str]) -> ParentRun:
    """Create the parent run in ``config.experiment`` with the settings as params.

    Raises:
        UnmixlabError: the tracking store is unreachable (retried) or the experiment deleted.
    """
    settings = config.model_dump(mode="json")
    tags = {PRESET_TAG: config.name, NOTE_TAG: config.description, **tags}
    parent = ParentRun.start(config.experiment, run_name, tags=tags, settings=settings)
    describe_experiment(parent.client, parent.experiment_id, config.name, config.description)
    parent.client.log_dict(parent.run_id, settings, "experiment.json")
    return parent


@task(name="end_parent_run", **RETRY)
def end_parent_run(
    parent: ParentRun,
    status: str,
    metrics: dict[str, float] | None = None,
    error: str | None = None,
) -> None:
    """Log the flow's summary ``metrics`` and mark the run ``status`` (FINISHED, FAILED, KILLED)."""
    parent.end(status, error, metrics)
