"""Per-epoch metrics that survive a tracking-server outage.

The trainer's history (kept in every checkpoint) is the queue: after each epoch,
:class:`EpochMetrics` sends every (metric, epoch) the run does not hold yet. When the server
does not answer, training goes on and the metrics wait; the next epoch sends them once the
server answers again, and a resumed training backfills whatever its run lacks. While a
training runs, MLflow's own HTTP retries are bounded (:func:`bounded_requests`), so a dead
server costs seconds per epoch, not minutes.
"""

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from unmixlab.tracking import schema
from unmixlab.tracking.setup import is_server, redact_uri, server_answers
from unmixlab.trainer import EpochRecord, History, Trainer, TrainingCallback, TrainResult

logger = logging.getLogger(__name__)

# MLflow's HTTP settings while a training runs, unless set in the environment: a refused
# connection fails after ~3 s of retries, an unanswered one after 15 s (instead of ~8 minutes)
TRAINING_HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
# errors that mean "the server did not answer" (a refused, reset or timed-out request)
UNREACHABLE = (MlflowException, requests.RequestException, ConnectionError, TimeoutError)

_bounded_lock = threading.Lock()
_bounded_users: list[dict[str, str | None]] = []  # the environment saved by the first user


@contextmanager
def bounded_requests() -> Iterator[None]:
    """Bound MLflow's HTTP retries and timeout (:data:`TRAINING_HTTP_SETTINGS`) meanwhile.

    Values set in the environment win. Trainings in several threads share the setting; the
    last one to leave restores the environment.
    """
    with _bounded_lock:
        if not _bounded_users:
            saved = {key: os.environ.get(key) for key in TRAINING_HTTP_SETTINGS}
            for key, value in TRAINING_HTTP_SETTINGS.items():
                os.environ.setdefault(key, value)
        else:
            saved = _bounded_users[0]
        _bounded_users.append(saved)
    try:
        yield
    finally:
        with _bounded_lock:
            _bounded_users.pop()
            if not _bounded_users:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


def epoch_metrics(history: History) -> dict[str, dict[int, float]]:
    """Every per-epoch metric of ``history`` as ``name -> {epoch: value}``.

    A list shorter than the epochs (a checkpoint older than that metric) holds the last ones.
    """
    epochs = len(history.train_loss)
    curves = {
        schema.TRAIN_LOSS: history.train_loss,
        schema.VALID_LOSS: history.valid_loss,
        schema.VALID_SDR: history.valid_sdr,
        schema.LR: history.lr,
        schema.EPOCH_SECONDS: history.epoch_seconds,
        schema.TRAIN_SECONDS: history.train_seconds,
        schema.SAMPLES_PER_SECOND: history.samples_per_second,
    }
    return {
        name: {epochs - len(values) + 1 + i: value for i, value in enumerate(values)}
        for name, values in curves.items()
    }


# the metrics logged once training ends, at step 0 (MLflow charts them as bars, not as one dot
# on an epoch axis); a resumed run logs its new values at the same step
SUMMARY_METRICS = schema.SUMMARY_METRICS


def summary_metrics(result: TrainResult) -> dict[str, float]:
    """The values of :data:`SUMMARY_METRICS`."""
    values = (
        result.training_seconds,
        result.best_loss,
        result.history.best_epoch,
        result.epochs_trained,
    )
    return dict(zip(SUMMARY_METRICS, values, strict=True))


class EpochMetrics(TrainingCallback):
    """Logs each epoch's metrics with ``step=epoch``; what cannot be sent waits (see module).

    Args:
        client: the run's tracking client.
        run_id: the run receiving the metrics.
    """

    def __init__(self, client: MlflowClient, run_id: str):
        self.client = client
        self.run_id = run_id
        self.uri = client.tracking_uri
        self.sent: set[tuple[str, int]] | None = set()  # (metric, step) the run holds
        self.wanted: dict[str, dict[int, float]] = {}
        self.failure: str | None = None  # why the last attempt failed; None: all sent

    def on_train_start(self, trainer: Trainer) -> None:
        """After a resume: find what the run lacks of the restored epochs, and send it."""
        self.wanted = epoch_metrics(trainer.history)
        if trainer.history.train_loss:
            self.sent = None  # unknown: asked for when sending
            self.send()

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """Send this epoch's metrics, and any earlier ones the server did not take."""
        self.wanted = epoch_metrics(trainer.history)
        self.send()

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Send training_seconds, best_valid_loss, best_epoch and epochs_trained."""
        for name, value in summary_metrics(result).items():
            self.wanted.setdefault(name, {})[0] = value
        self.send()

    @property
    def pending(self) -> list[tuple[str, int, float]]:
        """``(metric, step, value)`` not known to be in the run."""
        return [
            (name, step, value)
            for name, values in self.wanted.items()
            for step, value in values.items()
            if self.sent is None or _sent_key(name, step, value) not in self.sent
        ]

    def pending_epochs(self) -> list[int]:
        """Epochs with a per-epoch metric not known to be in the run."""
        return sorted({step for name, step, _ in self.pending if name not in SUMMARY_METRICS})

    def send(self) -> bool:
        """Send what is pending; False (and training goes on) when the server does not answer."""
        if not self.pending:
            return True
        if self.failure and is_server(self.uri) and not server_answers(self.uri):
            return False  # still down: skip the request's retries
        now = int(time.time() * 1000)
        try:
            if self.sent is None:
                self.sent = self._logged()
            pending = self.pending
            for start in range(0, len(pending), MAX_METRICS_PER_BATCH):
                batch = pending[start : start + MAX_METRICS_PER_BATCH]
                metrics = [Metric(name, float(value), now, step) for name, step, value in batch]
                self.client.log_batch(self.run_id, metrics=metrics)
                self.sent.update(_sent_key(name, step, value) for name, step, value in batch)
        except UNREACHABLE as error:
            reason = next(iter(str(error).splitlines()), "") or type(error).__name__
            if self.failure is None:
                logger.warning(
                    "warning: MLflow server %s does not answer (%s); training goes on, the "
                    "metrics wait in the checkpoint and are sent when it answers again",
                    redact_uri(self.uri),
                    reason[:300],
                )
            self.failure = reason
            return False
        if self.failure:
            logger.warning(
                "MLflow server %s answers again: sent %d waiting metrics",
                redact_uri(self.uri),
                len(pending),
            )
        self.failure = None
        return True

    def _logged(self) -> set[tuple[str, int, float]]:
        """``(metric, step, value)`` the run already holds, for the metrics wanted."""
        return {
            _sent_key(name, metric.step, metric.value)
            for name in {*self.wanted, *SUMMARY_METRICS}
            for metric in self.client.get_metric_history(self.run_id, name)
        }


def _sent_key(name: str, step: int, value: float) -> tuple[str, int, str]:
    """What identifies a logged metric value (``repr``: NaN equals NaN here)."""
    return name, step, repr(float(value))
