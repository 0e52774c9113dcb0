"""Prefect task ``train``: the train step, retried (and resumed) on transient failures."""

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.config import TrainConfig
from unmixlab.prepare import PreparedData
from unmixlab.steps.train import TrainedModel, train_model
from unmixlab.trainer import checkpoint_path


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
        MetricsUnsent: the server stopped answering during the training (retried: the
            retry trains nothing more and sends what is missing).
    """
    checkpoint = checkpoint_path(config)
    resume = checkpoint.is_file()  # left by an earlier attempt of this run
    if resume:
        run_logger().info("resuming %s from %s", config.run.target, checkpoint)
    model = train_model(
        config,
        data,
        experiment=experiment,
        run_name=run_name,
        parent_run_id=parent_run_id,
        preset=preset,
        resume=resume,
    )
    run_logger().info(
        "trained %s in %.1f s: best valid loss %.5g (epoch %d of %d), MLflow run %s",
        model.target,
        model.training_seconds,
        model.best_valid_loss,
        model.best_epoch,
        model.epochs_trained,
        model.run_id,
    )
    return model
