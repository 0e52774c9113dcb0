"""Prefect tasks around a flow's parent MLflow run: open it first, close it last.

The targets' training runs nest under it; it holds the experiment settings (params and
``experiment.json``), the evaluation tables and the final status of the flow.
"""

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.tracking.names import NOTE_TAG, describe_experiment
from unmixlab.tracking.runs import flatten, git_commit
from unmixlab.tracking.setup import (
    ensure_tracking_reachable,
    get_or_create_experiment,
    resolve_tracking_uri,
)

RETRY = retry_transient()


@dataclass(frozen=True)
class ParentRun:
    """The flow's MLflow run and where to find it."""

    run_id: str
    experiment_id: str
    tracking_uri: str


@task(name="start_parent_run", **RETRY)
def start_parent_run(config: ExperimentConfig, run_name: str, tags: dict[str, str]) -> ParentRun:
    """Create the parent run in ``config.experiment`` with the settings as params.

    Raises:
        UnmixlabError: the tracking store is unreachable (retried) or the experiment deleted.
    """
    from mlflow.tracking.context.registry import resolve_tags

    uri = resolve_tracking_uri()
    ensure_tracking_reachable(uri)
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, config.experiment)
    describe_experiment(client, experiment_id, config.name, config.description)
    tags = {"preset": config.name, NOTE_TAG: config.description, **tags}
    if commit := git_commit():
        tags["git_commit"] = commit
    run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(tags))
    run_id = run.info.run_id
    settings = config.model_dump(mode="json")
    params = [Param(k, v[:6000]) for k, v in flatten(settings).items()]
    for start in range(0, len(params), 100):  # MLflow's batch limit
        client.log_batch(run_id, params=params[start : start + 100])
    with tempfile.TemporaryDirectory(prefix="unmixlab-") as tmp:
        path = Path(tmp) / "experiment.json"
        path.write_text(json.dumps(settings, indent=2))
        client.log_artifact(run_id, str(path))
    return ParentRun(run_id, experiment_id, uri)


@task(name="end_parent_run", **RETRY)
def end_parent_run(run_id: str, status: str, metrics: dict[str, float]) -> None:
    """Log the flow's summary ``metrics`` and mark the run ``status`` (FINISHED, FAILED)."""
    client = MlflowClient(resolve_tracking_uri())
    now = int(time.time() * 1000)
    if metrics:
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    client.set_terminated(run_id, status)
