"""The study's MLflow runs: one parent run per study, one nested child run per trial.

Trial runs are made by :func:`unmixlab.tracking.runs.train_tracked` with ``parent_run_id``
passed explicitly, so nesting holds whatever process or thread runs the trial. Each child
run ends with the tag ``trial_state`` (``COMPLETE``, ``PRUNED`` or ``FAIL``) and a status:

- COMPLETE: FINISHED. ``train_tracked`` logged the model folder and checkpoint, but no pyfunc
  model (``log_model=False``: 1-2 s a trial saved), so no trial is promoted; the best
  configuration is trained, logged and promoted in full by the ``training`` flow
  (``--train-best``);
- PRUNED: KILLED: the pruner stopped it; its per-epoch metrics stay, no model is logged.
  The ``error`` tag that the trainer's exception left is removed;
- FAIL: FAILED with the tag ``error`` (KILLED when interrupted with Ctrl-C); also when the
  training finished but its objective is not finite, or when its worker died (heartbeat).
"""

import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking.context.registry import resolve_tags

from unmixlab.tracking.runs import flatten, git_commit
from unmixlab.tracking.setup import (
    ensure_tracking_reachable,
    get_or_create_experiment,
    resolve_tracking_uri,
)

TRIAL_STATE_TAG = "trial_state"


def client() -> MlflowClient:
    """A client of the configured tracking store (``MLFLOW_TRACKING_URI`` or ./mlflow.db)."""
    uri = resolve_tracking_uri()
    ensure_tracking_reachable(uri)
    return MlflowClient(uri)


def start_parent_run(
    experiment: str, study_name: str, tags: dict[str, str], settings: dict, resume_run: str | None
) -> str:
    """Open the study's parent run: reuse ``resume_run`` when it exists in this store.

    Args:
        experiment: MLflow experiment name (created if missing).
        study_name: the Optuna study (run name and tag ``optuna.study``).
        tags: more tags (storage, objective, preset, data set); MLflow's context tags (user,
            source) and ``git_commit`` are added as on training runs.
        settings: the tune settings, logged as params ``tune.*`` on a new run.
        resume_run: the parent run recorded in the study by an earlier, interrupted start.

    Returns:
        The parent run id, in status RUNNING.
    """
    mlflow_client = client()
    experiment_id = get_or_create_experiment(mlflow_client, experiment)
    if resume_run and _exists(mlflow_client, resume_run, experiment_id):
        mlflow_client.update_run(resume_run, status=RunStatus.to_string(RunStatus.RUNNING))
        return resume_run
    tags = {"optuna.study": study_name, **tags}
    if commit := git_commit():
        tags["git_commit"] = commit
    run = mlflow_client.create_run(experiment_id, run_name=study_name, tags=resolve_tags(tags))
    params = [Param(f"tune.{k}", v[:6000]) for k, v in flatten(settings).items()]
    for start in range(0, len(params), 100):  # MLflow's batch limit
        mlflow_client.log_batch(run.info.run_id, params=params[start : start + 100])
    return run.info.run_id


def end_parent_run(run_id: str, status: str, error: str | None = None) -> None:
    """Mark the parent run FINISHED, FAILED or KILLED (with its ``error`` tag)."""
    mlflow_client = client()
    if error:
        mlflow_client.set_tag(run_id, "error", error[:5000])
    mlflow_client.set_terminated(run_id, status)


def mark_trial_run(
    run_id: str, state: str, values: dict[str, float] | None = None, error: str | None = None
) -> None:
    """Tag a trial's child run with its Optuna state; log the objective values it achieved.

    Args:
        run_id: the child run.
        state: ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        values: objective metric name -> value (complete trials).
        error: why the trial failed.
    """
    mlflow_client = client()
    mlflow_client.set_tag(run_id, TRIAL_STATE_TAG, state)
    if values:
        now = int(time.time() * 1000)
        metrics = [Metric(f"objective_{k}", float(v), now, 0) for k, v in values.items()]
        mlflow_client.log_batch(run_id, metrics=metrics)
    if state == "PRUNED":
        if "error" in mlflow_client.get_run(run_id).data.tags:
            mlflow_client.delete_tag(run_id, "error")
        mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    elif state == "FAIL":
        if error:
            mlflow_client.set_tag(run_id, "error", error[:5000])
        # RUNNING: its worker died; FINISHED: the training ended but its score is unusable
        if mlflow_client.get_run(run_id).info.status in ("RUNNING", "FINISHED"):
            mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))


def _exists(mlflow_client: MlflowClient, run_id: str, experiment_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.experiment_id == experiment_id and run.info.lifecycle_stage == "active"
