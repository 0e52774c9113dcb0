"""The Open-Unmix trainer: Adam, MSE on magnitudes, LR decay on plateau, early stopping.

Each epoch writes a checkpoint atomically; ``resume=True`` continues from it so that an
interrupted and resumed run ends with the same losses as an uninterrupted one (on a GPU too:
the checkpoint holds the CUDA generator). The best model is kept in the reference layout
(see :mod:`unmixlab.model_io`).

On a GPU the loop keeps the device busy: the loader's processes persist across epochs and pin
their batches, copies do not block, the loss is summed on the device and read once per
epoch, validation runs in batched chunks, and ``--amp`` runs the model under autocast.
"""

import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from unmixlab.config import ModelSettings, OptimConfig, RunConfig, TrainConfig
from unmixlab.data.datasets import EpochShuffle, TrainingChunks, WholeTracks
from unmixlab.device import (
    module_device,
    resolve_device,
    restore_rng_state,
    rng_state,
    set_deterministic,
)
from unmixlab.errors import UnmixlabError
from unmixlab.files import staged_files
from unmixlab.locks import output_lock
from unmixlab.model import OpenUnmix
from unmixlab.model_io import load_torch, save_torch, write_json, write_separator_json
from unmixlab.prepare import PreparedData, prepare
from unmixlab.progress import tqdm
from unmixlab.transforms import Spectrogram
from unmixlab.validation_sdr import validation_sdr

logger = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    train_loss: float
    valid_loss: float
    lr: float
    epoch_seconds: float
    train_seconds: float  # the training pass alone (no validation, no checkpoint)
    samples_per_second: float  # training chunks over train_seconds
    is_best: bool


@dataclass
class History:
    """Per-epoch curves and the early-stopping state."""

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_sdr: list[float] = field(default_factory=list)  # dB, the MDX global SDR
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    chunks_per_epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    @property
    def samples_per_second(self) -> list[float]:
        """Training chunks per second of each epoch's training pass."""
        return [self.chunks_per_epoch / seconds for seconds in self.train_seconds]


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :meth:`Trainer.fit`."""

    output: Path
    target: str
    history: History
    epochs_trained: int
    training_seconds: float
    stopped_early: bool
    first_epoch: int = 1  # the epoch this training began at (after a resume: the next one)

    @property
    def trained_nothing(self) -> bool:
        """Whether a resume found nothing left to train (``--epochs`` reached or stopped)."""
        return self.first_epoch > self.epochs_trained

    @property
    def best_loss(self) -> float:
        """Lowest validation loss."""
        return self.history.best_loss


class TrainingCallback:
    """Hooks into :class:`Trainer`; override what you need (MLflow, Optuna pruning, ...)."""

    def on_train_start(self, trainer: "Trainer") -> None:
        """Called once, after set-up (and after a resume restored the state)."""

    def on_epoch_end(self, trainer: "Trainer", record: EpochRecord) -> None:
        """Called after each epoch's checkpoint is written."""

    def on_train_end(self, trainer: "Trainer", result: TrainResult) -> None:
        """Called once training stopped normally."""


def input_statistics(data: WholeTracks, encoder: Spectrogram) -> tuple[Tensor, Tensor]:
    """Per-bin mean and std of the channel-averaged mixture magnitude, as the reference.

    Returns:
        ``(mean, std)``, each ``(nb_bins,)``; std is floored at 1e-4 of its maximum.

    Raises:
        UnmixlabError: every mixture is silent (no scale to normalise the input with).
    """
    device = module_device(encoder)
    total = total_sq = None
    count = 0
    for mixture, _ in tqdm(data, desc="input statistics", unit="track", leave=False):
        mag = encoder(mixture[None].to(device)).mean(1)[0].double()  # (nb_bins, nb_frames)
        total = mag.sum(1) if total is None else total + mag.sum(1)
        total_sq = (mag**2).sum(1) if total_sq is None else total_sq + (mag**2).sum(1)
        count += mag.shape[1]
    mean = (total / count).cpu()
    std = (total_sq.cpu() / count - mean**2).clamp_min(0).sqrt()
    if std.max() == 0:
        raise UnmixlabError(
            f"all {len(data)} training mixtures are silent (every sample is zero)",
            "Check the data set: the model needs audible mixtures to learn from",
            data.tracks[0].path.parent,
        )
    std = torch.maximum(std, 1e-4 * std.max())
    return mean.float(), std.float()


AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class Trainer:
    """Trains one target model of ``config`` on prepared data (the data group is its)."""

    def __init__(
        self,
        config: TrainConfig,
        data: PreparedData,
        callbacks: list[TrainingCallback] | None = None,
    ):
        self.config = config
        self.prepared = data
        self.data = data.load()
        self.callbacks = list(callbacks or [])
        run, optim = config.run, config.optim
        self.output = Path(run.output)
        self.device = resolve_device(run.device)
        set_deterministic(run.deterministic, self.device)
        self.amp_dtype = AMP_DTYPES[run.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=run.amp == "fp16")
        mono = config.data.nb_channels == 1
        self.encoder = Spectrogram(config.model.nfft, config.model.nhop, mono=mono).to(self.device)
        self.train_set = TrainingChunks(
            self.data.reader,
            self.data.train,
            run.target,
            optim.seq_dur,
            optim.samples_per_track,
            optim.seed,
            optim.random_track_mix,
            optim.augment,
        )
        self.valid_set = WholeTracks(self.data.reader, self.data.valid, run.target)
        self.sampler = EpochShuffle(len(self.train_set), optim.seed)
        workers = run.nb_workers
        self.loader = DataLoader(  # built once: its worker processes live across epochs
            self.train_set,
            batch_size=optim.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(optim.seed),  # not the global generator
        )
        self.model: OpenUnmix | None = None
        self.history = History()

    @property
    def checkpoint_path(self) -> Path:
        """The last epoch's full training state."""
        return checkpoint_path(self.config)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``epochs`` or early stopping; return the histories and timing.

        The model's lock (:mod:`unmixlab.locks`) is held meanwhile: a second training of the
        same target into the same folder stops, or waits with ``wait_for_lock``.
        """
        run = self.config.run
        with output_lock(self.output, run.target, run.wait_for_lock):
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        run = self.config.run
        self.output.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.config.optim.seed)
        if resume:
            start_epoch = self._restore()
        else:
            warn_about_padding(self.train_set, self.config.optim.seq_dur)
            mean, std = input_statistics(
                WholeTracks(self.data.reader, self.data.train, "vocals"), self.encoder
            )
            self._build(OpenUnmix(self.config.architecture(), input_mean=mean, input_scale=std))
            start_epoch = 1
        for callback in self.callbacks:
            callback.on_train_start(self)

        stopped_early = self.history.bad_epochs >= run.patience  # a resumed early stop
        last_epoch = start_epoch - 1 if stopped_early else run.epochs
        epochs = tqdm(
            range(start_epoch, last_epoch + 1), desc=f"training {run.target}", unit="epoch"
        )
        for epoch in epochs:
            record = self._run_epoch(epoch)
            epochs.set_postfix(train=f"{record.train_loss:.4g}", valid=f"{record.valid_loss:.4g}")
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
            if self.history.bad_epochs >= run.patience:
                stopped_early = True
                break
        result = TrainResult(
            self.output,
            run.target,
            self.history,
            len(self.history.train_loss),
            sum(self.history.epoch_seconds),
            stopped_early,
            start_epoch,
        )
        for callback in self.callbacks:
            callback.on_train_end(self, result)
        return result

    def _build(self, model: OpenUnmix) -> None:
        optim = self.config.optim
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            model.parameters(),
            lr=optim.lr,
            weight_decay=optim.weight_decay,
            fused=True if self.device.type == "cuda" else None,  # one kernel per step on a GPU
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            factor=optim.lr_decay_gamma,
            patience=optim.lr_decay_patience,
            cooldown=optim.lr_decay_cooldown,
        )

    def _run_epoch(self, epoch: int) -> EpochRecord:
        start = time.perf_counter()
        train_loss = self._train_one_epoch(epoch)
        train_seconds = time.perf_counter() - start
        valid_loss = self._validate()
        seconds = time.perf_counter() - start
        self.scheduler.step(valid_loss)

        history = self.history
        lr = self.optimizer.param_groups[0]["lr"]
        is_best = valid_loss < history.best_loss
        if is_best:
            history.best_loss, history.best_epoch, history.bad_epochs = valid_loss, epoch, 0
        else:
            history.bad_epochs += 1
        history.train_loss.append(train_loss)
        history.valid_loss.append(valid_loss)
        history.valid_sdr.append(validation_sdr(self))
        history.lr.append(lr)
        history.epoch_seconds.append(seconds)
        history.train_seconds.append(train_seconds)
        history.chunks_per_epoch = len(self.train_set)
        # the model folder is whole or as it was: its files are put in place together
        with staged_files(self.output) as stage:
            if is_best:
                save_torch(self.model.state_dict(), stage / f"{self.config.run.target}.pth")
            self._save_checkpoint(epoch, stage / self.checkpoint_path.name)
            self._write_model_json(stage)
        rate = len(self.train_set) / train_seconds
        return EpochRecord(epoch, train_loss, valid_loss, lr, seconds, train_seconds, rate, is_best)

    def _estimate(self, mixture: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The model's estimate and the target's magnitudes, float32, on the device.

        Audio is ``(nb_samples, nb_channels, nb_timesteps)`` on any device; both results
        are ``(nb_samples, nb_channels, nb_bins, nb_frames)``. The spectrograms are computed
        in float32, the model under ``--amp``'s autocast.
        """
        mixture = mixture.to(self.device, non_blocking=True)
        target = target.to(self.device, non_blocking=True)
        mix_spec, target_spec = self.encoder(mixture), self.encoder(target)
        amp = self.amp_dtype
        with torch.autocast(self.device.type, dtype=amp) if amp else contextlib.nullcontext():
            estimate = self.model(mix_spec)
        return estimate.float(), target_spec

    def _loss(self, mixture: Tensor, target: Tensor) -> Tensor:
        """MSE of target magnitudes; audio is ``(nb_samples, nb_channels, nb_timesteps)``."""
        return nn.functional.mse_loss(*self._estimate(mixture, target))

    def _train_one_epoch(self, epoch: int) -> float:
        self.model.train()
        self.sampler.set_epoch(epoch)
        total = torch.zeros((), device=self.device)  # read once, after the epoch: no sync
        batches = tqdm(self.loader, desc=f"epoch {epoch}", unit="batch", leave=False)
        for mixture, target in batches:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss(mixture, target)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += loss.detach() * mixture.shape[0]
        loss = total.item() / len(self.train_set)
        if not math.isfinite(loss):
            raise self._diverged(f"training loss became {loss} in epoch {epoch}")
        return loss

    @torch.no_grad()
    def _validate(self) -> float:
        """Mean over validation tracks of each track's MSE, read once."""
        self.model.eval()
        total = torch.zeros((), device=self.device)
        for mixture, target in self.valid_set:
            total += self._track_loss(mixture, target)
        loss = total.item() / len(self.valid_set)
        if not math.isfinite(loss):
            raise self._diverged(f"validation loss became {loss}")
        return loss

    def _track_loss(self, mixture: Tensor, target: Tensor) -> Tensor:
        """MSE of one whole track, computed on ``--seq-dur`` chunks in batches (a 0-d tensor).

        ``mixture`` and ``target`` are ``(nb_channels, nb_timesteps)``; the last chunk takes
        the remainder, so every sample counts once.
        """
        length = self.train_set.length
        nb_even = max(mixture.shape[-1] // length, 1) - 1  # equal chunks; the last: the rest
        even = nb_even * length
        # the equal chunks as one batch: (nb_even, nb_channels, length)
        mix_chunks = mixture[:, :even].unflatten(-1, (nb_even, length)).transpose(0, 1)
        target_chunks = target[:, :even].unflatten(-1, (nb_even, length)).transpose(0, 1)
        size = self.config.optim.batch_size
        pieces = [
            (mix_chunks[i : i + size], target_chunks[i : i + size]) for i in range(0, nb_even, size)
        ]
        pieces.append((mixture[None, :, even:], target[None, :, even:]))
        squared = count = 0
        for mix, tgt in pieces:
            estimate, target_spec = self._estimate(mix, tgt)
            squared = squared + ((estimate - target_spec) ** 2).sum()
            count += estimate.numel()
        return squared / count

    def _diverged(self, problem: str) -> UnmixlabError:
        """The error for a non-finite loss, naming the checkpoint that is kept (if any)."""
        if self.checkpoint_path.is_file():
            kept = f"the last good checkpoint (epoch {len(self.history.train_loss)}) is kept"
            path = self.checkpoint_path
        else:
            kept = "no epoch finished, so nothing was saved"
            path = self.output
        return UnmixlabError(
            problem, f"Lower --lr or check the data for silent or clipped stems; {kept}", path
        )

    def _save_checkpoint(self, epoch: int, path: Path) -> None:
        save_torch(
            {
                "epoch": epoch,
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": asdict(self.history),
                "rng": rng_state(self.device),
                "scaler": self.scaler.state_dict(),
                "config": self.config.flat(),
                "data_fingerprint": self.data.fingerprint,
            },
            path,
        )

    def _restore(self) -> int:
        state = load_checkpoint(self.config, self.device)
        if state.get("data_fingerprint", self.data.fingerprint) != self.data.fingerprint:
            raise UnmixlabError(
                "checkpoint was trained on other data (its files, sample rate or channels)",
                "Resume on the same data, or train without --resume",
                self.checkpoint_path,
            )
        self._build(OpenUnmix(self.config.architecture()))
        try:
            self.model.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.history = History(**state["history"])
            restore_rng_state(state["rng"], self.device)
            if self.scaler.is_enabled() and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            return int(state["epoch"]) + 1
        except (LookupError, TypeError, ValueError, RuntimeError) as error:
            raise UnmixlabError(
                f"is not a checkpoint of this model ({error})",
                DAMAGED_CHECKPOINT_FIX,
                self.checkpoint_path,
            ) from error

    def _write_model_json(self, stage: Path) -> None:
        """Write ``<target>.json`` and ``separator.json`` into ``stage`` (for ``output``)."""
        config = self.config
        history = self.history
        write_json(
            stage / f"{config.run.target}.json",
            {
                "args": config.flat(),
                "model": config.architecture().model_dump(),
                "best_loss": history.best_loss,
                "best_epoch": history.best_epoch,
                "epochs_trained": len(history.train_loss),
                "train_loss_history": history.train_loss,
                "valid_loss_history": history.valid_loss,
                "lr_history": history.lr,
                "train_time_history": history.epoch_seconds,
                "training_seconds": sum(history.epoch_seconds),
                "num_bad_epochs": history.bad_epochs,
            },
        )
        data, model = config.data, config.model
        write_separator_json(
            self.output, data.sample_rate, model.nfft, model.nhop, data.nb_channels, stage
        )


DAMAGED_CHECKPOINT_FIX = (
    "Delete it and train without --resume (the best epoch's model files are kept)"
)


def checkpoint_path(config: TrainConfig) -> Path:
    """``OUTPUT/<target>.chkpnt``: the last epoch's full training state."""
    return Path(config.run.output) / f"{config.run.target}.chkpnt"


def load_checkpoint(config: TrainConfig, device: str | torch.device = "cpu") -> dict:
    """The checkpoint of ``config``, checked to be whole and trained with the same settings.

    Raises:
        UnmixlabError: no checkpoint; an empty, truncated, foreign or damaged file; or one
            trained with settings that may not change on resume.
    """
    path = checkpoint_path(config)
    if not path.is_file():
        raise UnmixlabError(
            "no checkpoint to resume from", "Run without --resume to start afresh", path
        )
    state = load_torch(path, DAMAGED_CHECKPOINT_FIX, device)
    try:
        saved = dict(state["config"])
    except (LookupError, TypeError, ValueError) as error:
        raise UnmixlabError(
            "is not an unmixlab checkpoint", DAMAGED_CHECKPOINT_FIX, path
        ) from error
    current = config.flat()
    fixed = [*ModelSettings.model_fields, *OptimConfig.model_fields]  # all but data and run
    changed = [k for k in fixed if saved.get(k) != current[k]]
    if changed:
        raise UnmixlabError(
            f"checkpoint was trained with other settings ({', '.join(changed)})",
            f"Resume with the same settings; only the run's ({', '.join(RunConfig.model_fields)})"
            " and the data's location may change",
            path,
        )
    return state


def resume_config(given: Mapping[str, Any]) -> TrainConfig:
    """The settings of a ``--resume``: the checkpoint's, changed by the flags the user passed.

    The checkpoint is found from the given (or default) ``output`` and ``target``. A given
    model or optimiser setting that differs from the checkpoint's is refused later, by
    :func:`load_checkpoint`; the run group and the data's location may change.

    Args:
        given: the flat settings the user passed (``{"epochs": 20, "output": ...}``).

    Raises:
        UnmixlabError: no checkpoint, or an unreadable one.
    """
    path = checkpoint_path(TrainConfig(**{k: given[k] for k in ("output", "target") if k in given}))
    if not path.is_file():
        raise UnmixlabError(
            "no checkpoint to resume from", "Run without --resume to start afresh", path
        )
    state = load_torch(path, DAMAGED_CHECKPOINT_FIX)
    saved = state.get("config") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise UnmixlabError("is not an unmixlab checkpoint", DAMAGED_CHECKPOINT_FIX, path)
    known = TrainConfig.fields()
    kept = {key: value for key, value in saved.items() if key in known and key != "output"}
    return TrainConfig(**{**kept, **given, "output": path.parent})


def warn_about_padding(chunks: TrainingChunks, seq_dur: float) -> None:
    """Say when ``--seq-dur`` is longer than training tracks (their chunks are zero-padded)."""
    rate = chunks.reader.sample_rate
    seconds = sorted(chunks.reader.length(track) / rate for track in chunks.tracks)
    short = [s for s in seconds if s < seq_dur]
    if short:
        logger.warning(
            "warning: --seq-dur %g s is longer than %d of %d training tracks (shortest %.2f s): "
            "their chunks are padded with silence; lower --seq-dur to at most %.2f to train "
            "on audio only",
            seq_dur,
            len(short),
            len(seconds),
            seconds[0],
            seconds[0],
        )


def train(
    config: TrainConfig, resume: bool = False, callbacks: list[TrainingCallback] | None = None
) -> TrainResult:
    """Prepare the data of ``config`` and train its target: the whole ``unmixlab train``."""
    return Trainer(config, prepare(config.data), callbacks).fit(resume=resume)
