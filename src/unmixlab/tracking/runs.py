"""One MLflow run per trained target: params, per-epoch metrics, data set, artifacts, model.

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids (never the fluent
active-run stack), so trainings may run side by side in threads, each nested under a parent
run when one is given.
"""

import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, RunStatus
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.files import write_text
from unmixlab.model_io import write_separator_json
from unmixlab.prepare import PreparedData, prepare_data
from unmixlab.tracking.parent_run import context_tags, end_run, failure, flatten, log_params
from unmixlab.tracking.plots import plot_loss_curves
from unmixlab.tracking.setup import (
    ensure_tracking_reachable,
    get_or_create_experiment,
    resolve_tracking_uri,
)
from unmixlab.trainer import EpochRecord, Trainer, TrainingCallback, TrainResult
from unmixlab.validation_sdr import validation_sdr

logger = logging.getLogger(__name__)

# seconds between system-metric samples: short enough that a short run records some
SYSTEM_METRICS_SECONDS = 1.0


@dataclass(frozen=True)
class TrackedRun:
    """A training and the MLflow run that recorded it."""

    run_id: str
    result: TrainResult
    model_uri: str | None  # the pyfunc model, ``models:/<model_id>`` (None: not logged)


class MlflowLogger(TrainingCallback):
    """Logs each epoch's metrics with ``step=epoch``, and the summary when training ends."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client = client
        self.run_id = run_id

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """Log train_loss, valid_loss, valid_sdr, lr, epoch_seconds and samples_per_second."""
        self._log(
            {
                "train_loss": record.train_loss,
                "valid_loss": record.valid_loss,
                "valid_sdr": validation_sdr(trainer),
                "lr": record.lr,
                "epoch_seconds": record.epoch_seconds,
                "samples_per_second": record.samples_per_second,
            },
            step=record.epoch,
        )

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Log training_seconds, best_valid_loss, best_epoch and epochs_trained."""
        self._log(
            {
                "training_seconds": result.training_seconds,
                "best_valid_loss": result.best_loss,
                "best_epoch": result.history.best_epoch,
                "epochs_trained": result.epochs_trained,
            },
            step=result.epochs_trained,
        )

    def _log(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)


def train_tracked(
    config: TrainConfig,
    *,
    experiment: str = "unmixlab",
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    preset: str | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainingCallback] = (),
    log_model: bool = True,
) -> TrackedRun:
    """Train ``config.target`` inside its own MLflow run.

    The run gets the whole config as params, per-epoch metrics, system metrics, the data set
    as input, the loss-curve plot, the model folder (``model_files/``), the last checkpoint
    (``checkpoints/``) and the pyfunc model ``model`` (unless ``log_model`` is False). It ends
    FINISHED only when all of that was logged; an error ends it FAILED, an interrupt KILLED.

    Args:
        config: the training.
        experiment: MLflow experiment name (created if missing).
        run_name: the run's name (MLflow picks one if None).
        parent_run_id: nest the run under this run (trials, several targets).
        tags: extra run tags.
        preset: name of the preset the config came from (tag ``preset``).
        resume: continue from the checkpoint in ``config.output``, and continue its MLflow
            run when the folder records one of this tracking store.
        callbacks: more trainer callbacks (e.g. Optuna pruning), called after the logger.
        log_model: log the pyfunc model (1-2 s); without it the run has no ``model_uri``
            tag, so :func:`unmixlab.tracking.registry.promote` never picks it (tuning trials).

    Returns:
        The run id, the training result and the logged model's URI (None without the model).

    Raises:
        UnmixlabError: the tracking store is unreachable (before any training), or bad input.
    """
    uri = resolve_tracking_uri()
    ensure_tracking_reachable(uri)
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, experiment)
    run_id = find_resumable_run(client, config, experiment_id) if resume else None
    resumed = run_id is not None
    if resumed:
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    else:
        run_tags = run_tags_for(config, parent_run_id, preset, tags)
        run_id = client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id

    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SYSTEM_METRICS_SECONDS,
        resume_logging=resumed,
        tracking_uri=uri,
    )
    monitor.start()
    try:
        record_run(config, run_id, uri)
        log_config(client, run_id, config, resumed)
        data = prepare_data(config)
        log_dataset(client, run_id, config, data)
        trainer = Trainer(config, data, [MlflowLogger(client, run_id), *callbacks])
        result = trainer.fit(resume=resume)
        model_uri = log_training_artifacts(client, run_id, result, config, log_model)
    except BaseException as error:
        monitor.finish()
        end_run(client, run_id, *failure(error))
        raise
    monitor.finish()
    end_run(client, run_id, "FINISHED")
    return TrackedRun(run_id, result, model_uri)


def run_tags_for(
    config: TrainConfig,
    parent_run_id: str | None,
    preset: str | None,
    extra: dict[str, str] | None,
) -> dict[str, str]:
    """Tags of a new run: MLflow's context tags, target, preset, git commit, parent, extras."""
    tags = {"target": config.target}
    if preset:
        tags["preset"] = preset
    if parent_run_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    return context_tags({**tags, **(extra or {})})


def log_config(client: MlflowClient, run_id: str, config: TrainConfig, resumed: bool) -> None:
    """Log the whole config as params.

    A resumed run keeps its params (MLflow forbids changing them); settings that a resume may
    change (``--epochs``, ``--patience``, ...) are then recorded as tags ``resumed.<name>``.
    """
    params = flatten(config.model_dump(mode="json"))
    if resumed:
        logged = client.get_run(run_id).data.params
        for key, value in params.items():
            if key in logged and logged[key] != value:
                client.set_tag(run_id, f"resumed.{key}", value)
        params = {k: v for k, v in params.items() if k not in logged}
    log_params(client, run_id, params)


def log_dataset(client: MlflowClient, run_id: str, config: TrainConfig, data: PreparedData) -> None:
    """Tag the data set fingerprint and log the track list as the run's training input."""
    import pandas as pd

    rows = [
        {
            "track": track.name,
            "split": split,
            "seconds": round(track.duration, 3),
            "rate": track.rate,
            "channels": track.nb_channels,
        }
        for split, tracks in (("train", data.train), ("valid", data.valid))
        for track in tracks
    ]
    root = Path(config.root).absolute()
    with warnings.catch_warnings():
        # mlflow registers two resolvers for local paths; the int columns never miss values
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            pd.DataFrame(rows), source=str(root), name=root.name, digest=data.fingerprint
        )._to_mlflow_entity()
    client.set_tag(run_id, "dataset_fingerprint", data.fingerprint)
    context = InputTag(key="mlflow.data.context", value="training")
    inputs = [DatasetInput(dataset, [context])]
    try:
        client.log_inputs(run_id, datasets=inputs)
    except mlflow.exceptions.MlflowException:
        # MLflow's SQL store looks the data set up, then inserts it: when runs of one
        # experiment log the same new data set at once (tuning workers on PostgreSQL), one
        # insert fails on the unique key; the second try finds the row the other one wrote
        client.log_inputs(run_id, datasets=inputs)


def log_training_artifacts(
    client: MlflowClient,
    run_id: str,
    result: TrainResult,
    config: TrainConfig,
    log_model: bool = True,
) -> str | None:
    """Upload the loss curves, the model folder, the last checkpoint and the pyfunc model.

    Returns:
        The pyfunc model's URI (tag ``model_uri``); None when ``log_model`` is False.
    """
    from unmixlab.tracking.pyfunc import log_separator_model

    target = result.target
    with tempfile.TemporaryDirectory(prefix="unmixlab-artifacts-") as tmp:
        plot = plot_loss_curves(
            result.history, Path(tmp) / "loss_curves.png", f"{target}: {run_id[:8]}"
        )
        client.log_artifact(run_id, str(plot), "plots")
        model_dir = Path(tmp) / "model_files"
        model_dir.mkdir()
        for name in (f"{target}.pth", f"{target}.json"):
            shutil.copy2(result.output / name, model_dir / name)
        # this run's target only, whatever else shares the output folder
        write_separator_json(
            model_dir, config.sample_rate, config.nfft, config.nhop, config.nb_channels
        )
        client.log_artifacts(run_id, str(model_dir), "model_files")
        client.log_artifact(run_id, str(result.output / f"{target}.chkpnt"), "checkpoints")
        if not log_model:
            return None
        model_uri = log_separator_model(client, run_id, model_dir)
    client.set_tag(run_id, "model_uri", model_uri)
    return model_uri


def run_file(config: TrainConfig) -> Path:
    """Where the model folder records the MLflow run of its target."""
    return Path(config.output) / f"{config.target}.mlflow.json"


def record_run(config: TrainConfig, run_id: str, tracking_uri: str) -> None:
    """Write ``mlflow_run_id`` (and its store) next to the model, atomically."""
    write_text(
        run_file(config), json.dumps({"mlflow_run_id": run_id, "tracking_uri": tracking_uri})
    )


def find_resumable_run(client: MlflowClient, config: TrainConfig, experiment_id: str) -> str | None:
    """The run recorded in the model folder, if it lives in this store and experiment."""
    path = run_file(config)
    if not path.is_file():
        return None
    try:
        run_id = json.loads(path.read_text())["mlflow_run_id"]
        run = client.get_run(run_id)
    except (ValueError, KeyError, mlflow.exceptions.MlflowException):
        logger.warning("%s names no run of %s; starting a new run", path, client.tracking_uri)
        return None
    if run.info.experiment_id != experiment_id:
        raise UnmixlabError(
            f"the model folder was tracked in another MLflow experiment ({run.info.experiment_id})",
            "Resume with the same --experiment, or delete the file to start a new run",
            path,
        )
    return run_id
