"""The Optuna search's MLflow runs: a parent run per search, a nested child run per trial.

The parent run is a :class:`unmixlab.tracking.parent_run.ParentRun`.

Trial runs are made by the train step (:func:`unmixlab.steps.train.train_model`) with
``parent_run_id`` passed explicitly, so nesting holds whatever process or thread runs the
trial. Each child run ends with the tag ``trial_state`` (``COMPLETE``, ``PRUNED``,
``INTERRUPTED`` or ``FAIL``) and a status:

- COMPLETE: FINISHED. The train step logged the model folder and checkpoint, but no pyfunc
  model (``log_model=False``: 1-2 s a trial saved), so no trial is promoted; the best
  configuration is trained, logged and promoted in full by the ``training`` flow
  (``--train-best``);
- PRUNED: FINISHED (the pruner ended it as designed, nothing crashed); its description says
  when it was pruned; its per-epoch metrics stay, no model is logged. The ``error`` tag that
  the trainer's exception left is removed;
- INTERRUPTED: KILLED (Ctrl-C or SIGTERM); Optuna records the trial FAIL with the user
  attribute ``interrupted`` and queues its parameters again;
- FAIL: FAILED with the tag ``error``; also when the training finished but its objective is
  not finite, or when its worker died (heartbeat).
"""

import time
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from unmixlab.tracking.names import add_to_note, describe_experiment
from unmixlab.tracking.parent_run import ERROR_CHARS
from unmixlab.tracking.schema import ERROR_TAG, TRIAL_STATE_TAG, objective_metric
from unmixlab.tracking.setup import ensure_tracking_reachable, resolve_tracking_uri

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

RUN_ID_ATTR = "mlflow_run_id"  # trial user attribute naming the trial's child run


def client() -> MlflowClient:
    """A client of the configured tracking store (``MLFLOW_TRACKING_URI`` or ./mlflow.db)."""
    uri = resolve_tracking_uri()
    ensure_tracking_reachable(uri)
    return MlflowClient(uri)


def run_status(run_id: str) -> str:
    """The MLflow status of ``run_id`` (``RUNNING``, ``FINISHED``, ``FAILED``, ``KILLED``)."""
    return client().get_run(run_id).info.status


def mark_trial_run(
    run_id: str, state: str, values: dict[str, float] | None = None, error: str | None = None
) -> None:
    """Tag a trial's child run with its Optuna state; log the objective values it achieved.

    Args:
        run_id: the child run.
        state: ``COMPLETE``, ``PRUNED``, ``INTERRUPTED`` or ``FAIL``.
        values: objective metric name -> value (complete trials).
        error: why the trial failed, or when it was pruned.
    """
    mlflow_client = client()
    mlflow_client.set_tag(run_id, TRIAL_STATE_TAG, state)
    if values:
        now = int(time.time() * 1000)
        metrics = [Metric(objective_metric(k), float(v), now, 0) for k, v in values.items()]
        mlflow_client.log_batch(run_id, metrics=metrics)
    if state == "PRUNED":
        if ERROR_TAG in mlflow_client.get_run(run_id).data.tags:
            mlflow_client.delete_tag(run_id, ERROR_TAG)
        add_to_note(mlflow_client, run_id, {"optuna": error or "pruned"})
        # the training ended it already: a status change, without MLflow's second "View run"
        mlflow_client.update_run(run_id, status=RunStatus.to_string(RunStatus.FINISHED))
    elif state == "INTERRUPTED":
        add_to_note(mlflow_client, run_id, {"optuna": "interrupted; its parameters run again"})
        if mlflow_client.get_run(run_id).info.status == "RUNNING":
            mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    elif state == "FAIL":
        if error:
            mlflow_client.set_tag(run_id, ERROR_TAG, error[:ERROR_CHARS])
        # RUNNING: its worker died; FINISHED: the training ended but its score is unusable
        if mlflow_client.get_run(run_id).info.status in ("RUNNING", "FINISHED"):
            mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))


def describe_search_experiment(parent_run_id: str, preset: str, description: str) -> None:
    """Describe the experiment of a search's parent run by its preset (the experiment's note)."""
    mlflow_client = client()
    experiment_id = mlflow_client.get_run(parent_run_id).info.experiment_id
    describe_experiment(mlflow_client, experiment_id, preset, description)


def fail_stale_run(study: "optuna.Study", trial: "FrozenTrial") -> None:
    """Heartbeat clean-up: the trial of a dead worker fails, and so does its MLflow run."""
    if run_id := trial.user_attrs.get(RUN_ID_ATTR):
        mark_trial_run(
            run_id, "FAIL", error="worker stopped (no heartbeat within the grace period)"
        )
