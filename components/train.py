"""Prefect task ``train``: one target, tracked in its own (nested) MLflow run."""

from dataclasses import dataclass
from pathlib import Path

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.config import TrainConfig
from unmixlab.prepare import PreparedData
from unmixlab.tracking.names import training_run_name
from unmixlab.tracking.runs import train_tracked


@dataclass(frozen=True)
class TrainedModel:
    """A trained target: its MLflow run, its model folder and the training summary."""

    target: str
    run_id: str
    model_dir: Path
    model_uri: str
    training_seconds: float
    best_valid_loss: float
    best_epoch: int
    epochs_trained: int


@task(name="train", **retry_transient())
def train(
    config: TrainConfig,
    data: PreparedData,
    experiment: str,
    parent_run_id: str | None = None,
    preset: str | None = None,
    run_name: str | None = None,
) -> TrainedModel:
    """Train ``config.run.target`` on ``data`` under ``parent_run_id``; a retry resumes.

    The run is named ``run_name``, else by :func:`training_run_name` from its settings.

    Raises:
        UnmixlabError: bad input, or the tracking store is unreachable (retried).
        ConnectionError: the server stopped answering during the training (retried).
    """
    target = config.run.target
    checkpoint = Path(config.run.output) / f"{target}.chkpnt"
    resume = checkpoint.is_file()  # left by an earlier attempt of this run
    if resume:
        run_logger().info("resuming %s from %s", target, checkpoint)
    tracked = train_tracked(
        config,
        data,
        experiment=experiment,
        run_name=run_name or training_run_name(config.flat(), preset),
        parent_run_id=parent_run_id,
        preset=preset,
        resume=resume,
    )
    if tracked.unsent:  # a connectivity failure: the retry resumes, trains nothing, sends it
        raise ConnectionError(tracked.unsent)
    result = tracked.result
    run_logger().info(
        "trained %s in %.1f s: best valid loss %.5g (epoch %d of %d), MLflow run %s",
        result.target,
        result.training_seconds,
        result.best_loss,
        result.history.best_epoch,
        result.epochs_trained,
        tracked.run_id,
    )
    return TrainedModel(
        result.target,
        tracked.run_id,
        Path(result.output),
        tracked.model_uri,
        result.training_seconds,
        result.best_loss,
        result.history.best_epoch,
        result.epochs_trained,
    )
