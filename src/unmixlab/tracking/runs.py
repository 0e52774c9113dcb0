"""One MLflow run per trained target: params, per-epoch metrics, data set, artifacts, model.

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids (never the fluent
active-run stack), so trainings may run side by side in threads, each nested under a parent
run when one is given.
"""

import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, RunStatus, RunTag
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from unmixlab.config import TrainConfig
from unmixlab.device import device_tags, resolve_device
from unmixlab.errors import UnmixlabError
from unmixlab.locks import one_writer
from unmixlab.model_io import write_json, write_separator_json
from unmixlab.prepare import LoadedData, PreparedData, prepare
from unmixlab.tracking.buffered import EpochMetrics, bounded_requests
from unmixlab.tracking.names import add_to_note, training_note
from unmixlab.tracking.parent_run import context_tags, end_run, failure, flatten, log_params
from unmixlab.tracking.plots import plot_loss_curves
from unmixlab.tracking.schema import (
    DATASET_FINGERPRINT_TAG,
    MODEL_URI_TAG,
    PRESET_TAG,
    TARGET_TAG,
    resumed_tag,
)
from unmixlab.tracking.setup import (
    ensure_tracking_reachable,
    get_or_create_experiment,
    is_server,
    redact_uri,
    resolve_tracking_uri,
    server_answers,
)
from unmixlab.tracking.stale import close_stale_run
from unmixlab.trainer import (
    Trainer,
    TrainingCallback,
    TrainResult,
    checkpoint_path,
    load_checkpoint,
)

logger = logging.getLogger(__name__)

# seconds between system-metric samples: short enough that a short run records some
SYSTEM_METRICS_SECONDS = 1.0


@dataclass(frozen=True)
class TrackedRun:
    """A training and the MLflow run that recorded it."""

    run_id: str
    result: TrainResult
    model_uri: str | None  # the pyfunc model, ``models:/<model_id>`` (None: not logged)
    unsent: str | None = None  # what the server did not take, and how to send it later


@one_writer  # holds OUTPUT/<target>.lock: one training per model at a time
def train_tracked(
    config: TrainConfig,
    data: PreparedData | None = None,
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
    """Train ``config.run.target`` inside its own MLflow run.

    The run gets the whole config as params, per-epoch metrics, system metrics, the data set
    as input, the loss-curve plot, the model folder (``model_files/``), the last checkpoint
    (``checkpoints/``) and the pyfunc model ``model`` (unless ``log_model`` is False). It ends
    FINISHED only when all of that was logged; an error ends it FAILED, an interrupt KILLED.

    A tracking server that stops answering does not stop the training: the metrics wait (see
    :mod:`unmixlab.tracking.buffered`) and are sent when it answers again. If it still does
    not answer when training ends, the run stays RUNNING without the artifacts, and
    ``unsent`` says so; resuming later sends what is missing.

    Args:
        config: the training.
        data: the prepared data (None: prepare ``config.data`` here, reusing its cache).
        experiment: MLflow experiment name (created if missing).
        run_name: the run's name (MLflow picks one if None).
        parent_run_id: nest the run under this run (trials, several targets).
        tags: extra run tags.
        preset: name of the preset the config came from (tag ``preset``).
        resume: continue from the checkpoint in ``config.run.output``, and continue its MLflow
            run when the folder records one of this tracking store.
        callbacks: more trainer callbacks (e.g. Optuna pruning), called after the logger.
        log_model: log the pyfunc model (1-2 s); without it the run has no ``model_uri``
            tag, so :func:`unmixlab.tracking.registry.promote_best_run` never picks it
            (tuning trials).

    Returns:
        The run id, the training result, the logged model's URI (None without the model)
        and what could not be logged (None when everything was).

    Raises:
        UnmixlabError: the tracking store is unreachable (before any training), a damaged
            checkpoint to resume from (before the run is touched), or bad input.
    """
    uri = resolve_tracking_uri()
    ensure_tracking_reachable(uri)
    resolve_device(config.run.device)  # a missing GPU fails before any run or file is made
    if resume:
        load_checkpoint(config)  # refuse a damaged or foreign checkpoint before any change
    data = data or prepare(config.data)  # bad data stops here, before any run exists
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, experiment)
    run_id = find_resumable_run(client, config, experiment_id) if resume else None
    close_stale_run(client, run_file(config), run_id)  # a killed training's run, if any
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
    metrics = EpochMetrics(client, run_id)
    try:
        with bounded_requests():
            record_run(config, run_id, uri)
            log_config(client, run_id, config, resumed)
            trainer = Trainer(config, data, [metrics, *callbacks])
            log_dataset(client, run_id, config, trainer.data)
            client.log_batch(
                run_id, tags=[RunTag(k, v) for k, v in device_tags(trainer.device).items()]
            )
            result = trainer.fit(resume=resume)
            monitor.finish()
            if not metrics.send() or (is_server(uri) and not server_answers(uri)):
                return TrackedRun(run_id, result, None, unsent_message(uri, run_id, metrics))
            history = result.history
            note = training_note(
                result.best_loss, history.best_epoch, result.epochs_trained, result.training_seconds
            )
            add_to_note(client, run_id, note)
        model_uri = log_training_artifacts(client, run_id, result, config, log_model)
    except BaseException as error:
        with bounded_requests():
            monitor.finish()
            end_run(client, run_id, *failure(error))
        raise
    monitor.finish()
    end_run(client, run_id, "FINISHED")
    return TrackedRun(run_id, result, model_uri)


def unsent_message(uri: str, run_id: str, metrics: EpochMetrics) -> str:
    """One line: what the tracking server did not take, and how to send it."""
    epochs = metrics.pending_epochs()
    missing = f"the metrics of epochs {epochs[0]}-{epochs[-1]}, " if epochs else ""
    return (
        f"MLflow server {redact_uri(uri)} did not answer when training ended: run {run_id} "
        f"lacks {missing}the model files and the logged model, and stays RUNNING; all are "
        "kept in the output folder. When the server answers, run the same command with "
        "--resume to send them (it trains no further epochs)"
    )


def run_tags_for(
    config: TrainConfig,
    parent_run_id: str | None,
    preset: str | None,
    extra: dict[str, str] | None,
) -> dict[str, str]:
    """Tags of a new run: MLflow's context tags, target, preset, git commit, parent, extras."""
    tags = {TARGET_TAG: config.run.target}
    if preset:
        tags[PRESET_TAG] = preset
    if parent_run_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    return context_tags({**tags, **(extra or {})})


def log_config(client: MlflowClient, run_id: str, config: TrainConfig, resumed: bool) -> None:
    """Log the whole config as params.

    A resumed run keeps its params (MLflow forbids changing them); settings that a resume may
    change (``--epochs``, ``--patience``, ...) are then recorded as tags ``resumed.<name>``.
    """
    params = flatten(config.flat())
    if resumed:
        logged = client.get_run(run_id).data.params
        for key, value in params.items():
            if key in logged and logged[key] != value:
                client.set_tag(run_id, resumed_tag(key), value)
        params = {k: v for k, v in params.items() if k not in logged}
    log_params(client, run_id, params)


def log_dataset(client: MlflowClient, run_id: str, config: TrainConfig, data: LoadedData) -> None:
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
    root = Path(config.data.root).absolute()
    with warnings.catch_warnings():
        # mlflow registers two resolvers for local paths; the int columns never miss values
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            pd.DataFrame(rows), source=str(root), name=root.name, digest=data.fingerprint
        )._to_mlflow_entity()
    client.set_tag(run_id, DATASET_FINGERPRINT_TAG, data.fingerprint)
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
        title = client.get_run(run_id).info.run_name
        plot = plot_loss_curves(result.history, Path(tmp) / "loss_curves.png", title)
        client.log_artifact(run_id, str(plot), "plots")
        model_dir = Path(tmp) / "model_files"
        model_dir.mkdir()
        for name in (f"{target}.pth", f"{target}.json"):
            shutil.copy2(result.output / name, model_dir / name)
        # this run's target only, whatever else shares the output folder
        data, model = config.data, config.model
        write_separator_json(model_dir, data.sample_rate, model.nfft, model.nhop, data.nb_channels)
        client.log_artifacts(run_id, str(model_dir), "model_files")
        client.log_artifact(run_id, str(checkpoint_path(config)), "checkpoints")
        if not log_model:
            return None
        model_uri = log_separator_model(client, run_id, model_dir)
    client.set_tag(run_id, MODEL_URI_TAG, model_uri)
    return model_uri


def run_file(config: TrainConfig) -> Path:
    """Where the model folder records the MLflow run of its target."""
    return Path(config.run.output) / f"{config.run.target}.mlflow.json"


def record_run(config: TrainConfig, run_id: str, tracking_uri: str) -> None:
    """Write ``mlflow_run_id`` (and its store) next to the model, atomically."""
    uri = redact_uri(tracking_uri)
    write_json(run_file(config), {"mlflow_run_id": run_id, "tracking_uri": uri})


def find_resumable_run(client: MlflowClient, config: TrainConfig, experiment_id: str) -> str | None:
    """The run recorded in the model folder, if it lives in this store and experiment."""
    path = run_file(config)
    if not path.is_file():
        return None
    try:
        run_id = json.loads(path.read_text())["mlflow_run_id"]
        run = client.get_run(run_id)
    except (ValueError, KeyError, mlflow.exceptions.MlflowException):
        uri = redact_uri(client.tracking_uri)
        logger.warning("%s names no run of %s; starting a new run", path, uri)
        return None
    if run.info.experiment_id != experiment_id:
        raise UnmixlabError(
            f"the model folder was tracked in another MLflow experiment ({run.info.experiment_id})",
            "Resume with the same --experiment, or delete the file to start a new run",
            path,
        )
    return run_id
