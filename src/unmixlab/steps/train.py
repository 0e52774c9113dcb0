"""The train step: one target trained in its own MLflow run, or an error.

The result every orchestrator sees is :class:`TrainedModel`. A training whose metrics or
model the tracking server did not take raises :class:`MetricsUnsent` on every engine: the
model folder keeps everything, and running the step again with ``resume`` sends it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.prepare import PreparedData
from unmixlab.tracking.names import training_run_name
from unmixlab.tracking.runs import train_tracked
from unmixlab.trainer import TrainingCallback


class MetricsUnsent(UnmixlabError):
    """The training ended but the tracking server did not take all it logged.

    Raised ``from`` a :class:`ConnectionError`, so an engine that retries connectivity
    failures (Prefect, :func:`components.runtime.is_transient`) retries it, and the retry
    resumes: it trains nothing more and sends what is missing.
    """


@dataclass(frozen=True)
class TrainedModel:
    """A trained target: its MLflow run, its model folder and the training summary.

    Attributes:
        target: the separated target (``vocals``, ...).
        run_id: the MLflow run that recorded the training.
        model_dir: the model folder (reference layout: ``<target>.pth``, ``<target>.json``).
        model_uri: the logged pyfunc model (``models:/<id>``); None when not logged (trials).
        device: the training's device setting (``auto``, ``cpu``, ``cuda:0``).
        training_seconds: wall clock of the epochs trained (all attempts together).
        best_valid_loss: the lowest validation loss.
        best_epoch: the epoch of ``best_valid_loss`` (its model is the one kept).
        epochs_trained: epochs in the model folder.
        first_epoch: the epoch this call began at (after a resume: the next one).
        stopped_early: early stopping ended the training.
        epoch_seconds: wall clock of each epoch trained.
    """

    target: str
    run_id: str
    model_dir: Path
    model_uri: str | None
    device: str
    training_seconds: float
    best_valid_loss: float
    best_epoch: int
    epochs_trained: int
    first_epoch: int = 1
    stopped_early: bool = False
    epoch_seconds: tuple[float, ...] = ()

    def as_metadata(self) -> dict[str, Any]:
        """JSON values of every field but ``model_dir`` (an engine's artifact holds the folder)."""
        fields = asdict(self)
        del fields["model_dir"]
        return {**fields, "epoch_seconds": list(self.epoch_seconds)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], model_dir: Path) -> "TrainedModel":
        """The model that :meth:`as_metadata` described, its folder now at ``model_dir``."""
        fields = {name: metadata[name] for name in cls.__dataclass_fields__ if name in metadata}
        fields["epoch_seconds"] = tuple(fields.get("epoch_seconds", ()))
        return cls(**{**fields, "model_dir": Path(model_dir)})

    @property
    def trained_nothing(self) -> bool:
        """Whether a resume found nothing left to train (``--epochs`` reached or stopped)."""
        return self.first_epoch > self.epochs_trained


def train_model(
    config: TrainConfig,
    data: PreparedData | None = None,
    *,
    experiment: str = "unmixlab",
    parent_run_id: str | None = None,
    preset: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainingCallback] = (),
    log_model: bool = True,
) -> TrainedModel:
    """Train ``config.run.target`` on ``data``, tracked as one MLflow run.

    Args:
        config: the whole training section (data, model, optimiser, run).
        data: the prepare step's result (None: prepare ``config.data`` here, from its cache).
        experiment: MLflow experiment (created if missing).
        parent_run_id: nest the run under this one (a flow's run, a study, a search).
        preset: the preset the settings came from (tag, and part of the run name).
        run_name: the run's name (default: preset, target, size and seed).
        tags: more run tags (:mod:`unmixlab.tracking.schema` names them).
        resume: continue from the checkpoint in ``config.run.output`` (and its run).
        callbacks: more trainer callbacks (Optuna pruning).
        log_model: log the pyfunc model; without it the run cannot be promoted (trials).

    Raises:
        MetricsUnsent: the tracking server did not take everything (run again with resume).
        UnmixlabError: bad input, or the tracking store is unreachable before training.
    """
    tracked = train_tracked(
        config,
        data,
        experiment=experiment,
        run_name=run_name or training_run_name(config.flat(), preset),
        parent_run_id=parent_run_id,
        tags=tags,
        preset=preset,
        resume=resume,
        callbacks=callbacks,
        log_model=log_model,
    )
    if tracked.unsent:
        raise MetricsUnsent(
            tracked.unsent, "The model folder keeps it all; resume once the server answers"
        ) from ConnectionError(tracked.unsent)
    result = tracked.result
    return TrainedModel(
        target=result.target,
        run_id=tracked.run_id,
        model_dir=Path(result.output),
        model_uri=tracked.model_uri,
        device=config.run.device,
        training_seconds=result.training_seconds,
        best_valid_loss=result.best_loss,
        best_epoch=result.history.best_epoch,
        epochs_trained=result.epochs_trained,
        first_epoch=result.first_epoch,
        stopped_early=result.stopped_early,
        epoch_seconds=tuple(result.history.epoch_seconds),
    )
