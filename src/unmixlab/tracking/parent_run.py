"""Parent runs, and the lifecycle helpers every run unmixlab opens shares.

:class:`ParentRun` opens and ends the runs that others nest under: a flow's parent run
(``training``, ``study``) and an Optuna search's parent run. The training runs are opened
by :func:`unmixlab.tracking.runs.train_tracked`, not here, but with this module's helpers:
settings go in as params (:func:`log_params`: flattened to ``a.b`` keys, values cut to
MLflow's limit, in batches of 100), context tags (:func:`context_tags`), and the run ends
FINISHED, FAILED (with the tag ``error``) or KILLED (interrupted) (:func:`end_run`).
"""

import json
import logging
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus

import unmixlab
from unmixlab.tracking.schema import ERROR_TAG
from unmixlab.tracking.setup import (
    ensure_tracking_reachable,
    get_or_create_experiment,
    resolve_tracking_uri,
)

logger = logging.getLogger(__name__)

PARAM_CHARS = 6000  # MLflow's limit on a param value
ERROR_CHARS = 5000  # the head of a long error, well inside MLflow's limit on a tag value
BATCH_SIZE = 100  # MLflow's limit on params per log_batch


@dataclass(frozen=True)
class ParentRun:
    """An MLflow run that other runs nest under, and where to find it.

    Attributes:
        run_id: the run.
        experiment_id: its experiment.
        tracking_uri: its tracking store.
    """

    run_id: str
    experiment_id: str
    tracking_uri: str

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        settings: Mapping[str, Any],
        prefix: str = "",
        resume_run: str | None = None,
    ) -> "ParentRun":
        """Open a run in ``experiment`` (created if missing), or reopen ``resume_run``.

        Args:
            experiment: MLflow experiment name.
            run_name: the new run's name.
            tags: tags beside MLflow's context tags and the git commit.
            settings: nested settings, logged as params ``<prefix><a.b>`` on a new run.
            prefix: prefix of the param names, e.g. ``tune.``.
            resume_run: a run of an earlier, interrupted start: reopened (RUNNING) when it
                is an active run of this experiment in this store.

        Raises:
            UnmixlabError: the tracking store is unreachable or the experiment deleted.
        """
        uri = resolve_tracking_uri()
        ensure_tracking_reachable(uri)
        client = MlflowClient(uri)
        experiment_id = get_or_create_experiment(client, experiment)
        if resume_run and _is_active_in(client, resume_run, experiment_id):
            client.update_run(resume_run, status=RunStatus.to_string(RunStatus.RUNNING))
            return cls(resume_run, experiment_id, uri)
        run = client.create_run(experiment_id, run_name=run_name, tags=context_tags(tags))
        log_params(client, run.info.run_id, flatten(dict(settings), prefix))
        return cls(run.info.run_id, experiment_id, uri)

    @classmethod
    def of(cls, run_id: str) -> "ParentRun":
        """The run ``run_id`` of the configured tracking store."""
        uri = resolve_tracking_uri()
        run = MlflowClient(uri).get_run(run_id)
        return cls(run_id, run.info.experiment_id, uri)

    @property
    def client(self) -> MlflowClient:
        """A client of the run's tracking store."""
        return MlflowClient(self.tracking_uri)

    def end(
        self,
        status: str = "FINISHED",
        error: str | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Log ``metrics`` and mark the run ``status`` (see :func:`end_run`)."""
        end_run(self.client, self.run_id, status, error, metrics)


def context_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` with MLflow's context tags (source, user) and ``git_commit`` added."""
    from mlflow.tracking.context.registry import resolve_tags

    commit = git_commit()
    return resolve_tags({**({"git_commit": commit} if commit else {}), **tags})


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    """Log ``params``, each value cut to MLflow's limit, in batches of MLflow's size."""
    items = [Param(key, str(value)[:PARAM_CHARS]) for key, value in params.items()]
    for start in range(0, len(items), BATCH_SIZE):
        client.log_batch(run_id, params=items[start : start + BATCH_SIZE])


def failure(error: BaseException) -> tuple[str, str]:
    """The status and ``error`` tag of a run stopped by ``error``: KILLED or FAILED.

    Anything that is not an :class:`Exception` stops a run from outside (Ctrl-C, or SIGTERM as
    the command or Prefect raises it): KILLED.
    """
    if not isinstance(error, Exception):
        return "KILLED", "interrupted"
    return "FAILED", f"{type(error).__name__}: {error}"


def end_run(
    client: MlflowClient,
    run_id: str,
    status: str,
    error: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> None:
    """Log ``metrics`` (step 0), tag ``error`` and mark the run ``status``.

    With an ``error`` the run's own failure matters more: when the store cannot be reached
    then, that is logged and nothing is raised.

    Args:
        client: a client of the run's store.
        run_id: the run.
        status: ``FINISHED``, ``FAILED`` or ``KILLED``.
        error: why the run stopped (its first 5000 characters become the tag ``error``).
        metrics: summary metrics of the run.
    """
    try:
        if metrics:
            now = int(time.time() * 1000)
            items = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
            client.log_batch(run_id, metrics=items)
        if error:
            client.set_tag(run_id, ERROR_TAG, error[:ERROR_CHARS])
        client.set_terminated(run_id, status)
    except Exception as problem:
        if error is None:
            raise
        logger.warning("could not mark MLflow run %s %s: %s", run_id, status, problem)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as ``{"a.b": "value"}``; lists as JSON, everything else as ``str``."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def git_commit() -> str | None:
    """The commit of the checkout holding the ``unmixlab`` source, if it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(unmixlab.__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _is_active_in(client: MlflowClient, run_id: str, experiment_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.experiment_id == experiment_id and run.info.lifecycle_stage == "active"
