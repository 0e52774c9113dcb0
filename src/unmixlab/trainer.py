"""The Open-Unmix trainer: Adam, MSE on magnitudes, LR decay on plateau, early stopping.

Each epoch writes a checkpoint atomically; ``resume=True`` continues from it so that an
interrupted and resumed run ends with the same losses as an uninterrupted one. The best
model is kept in the reference layout (see :mod:`unmixlab.model_io`).
"""

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from unmixlab.config import TrainConfig
from unmixlab.data.datasets import TrainingChunks, WholeTracks
from unmixlab.errors import UnmixlabError
from unmixlab.model import OpenUnmix
from unmixlab.model_io import save_torch, write_json, write_separator_json
from unmixlab.prepare import PreparedData, prepare_data
from unmixlab.progress import tqdm
from unmixlab.transforms import Spectrogram


@dataclass
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    train_loss: float
    valid_loss: float
    lr: float
    epoch_seconds: float
    samples_per_second: float
    is_best: bool


@dataclass
class History:
    """Per-epoch curves and the early-stopping state."""

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :meth:`Trainer.fit`."""

    output: Path
    target: str
    history: History
    epochs_trained: int
    training_seconds: float
    stopped_early: bool

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
    """
    total = total_sq = None
    count = 0
    for mixture, _ in tqdm(data, desc="input statistics", unit="track", leave=False):
        mag = encoder(mixture[None]).mean(1)[0].double()  # (nb_bins, nb_frames)
        total = mag.sum(1) if total is None else total + mag.sum(1)
        total_sq = (mag**2).sum(1) if total_sq is None else total_sq + (mag**2).sum(1)
        count += mag.shape[1]
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(0).sqrt()
    std = torch.maximum(std, 1e-4 * std.max())
    return mean.float(), std.float()


class Trainer:
    """Trains one target model of ``config`` on prepared data."""

    def __init__(
        self,
        config: TrainConfig,
        data: PreparedData,
        callbacks: list[TrainingCallback] | None = None,
    ):
        self.config = config
        self.data = data
        self.callbacks = list(callbacks or [])
        self.output = Path(config.output)
        self.device = torch.device(config.device)
        self.encoder = Spectrogram(config.nfft, config.nhop, mono=config.nb_channels == 1).to(
            self.device
        )
        self.train_set = TrainingChunks(
            data.reader,
            data.train,
            config.target,
            config.seq_dur,
            config.samples_per_track,
            config.seed,
            config.random_track_mix,
            config.augment,
        )
        self.valid_set = WholeTracks(data.reader, data.valid, config.target)
        self.model: OpenUnmix | None = None
        self.history = History()

    @property
    def checkpoint_path(self) -> Path:
        """The last epoch's full training state."""
        return self.output / f"{self.config.target}.chkpnt"

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``epochs`` or early stopping; return the histories and timing."""
        config = self.config
        self.output.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        if resume and not self.checkpoint_path.is_file():
            raise UnmixlabError(
                "no checkpoint to resume from",
                "Run without --resume to start afresh",
                self.checkpoint_path,
            )
        if resume:
            start_epoch = self._restore()
        else:
            mean, std = input_statistics(
                WholeTracks(self.data.reader, self.data.train, "vocals"), self.encoder
            )
            self._build(OpenUnmix(config.model(), input_mean=mean, input_scale=std))
            start_epoch = 1
        for callback in self.callbacks:
            callback.on_train_start(self)

        stopped_early = False
        epochs = tqdm(
            range(start_epoch, config.epochs + 1), desc=f"training {config.target}", unit="epoch"
        )
        for epoch in epochs:
            record = self._run_epoch(epoch)
            epochs.set_postfix(train=f"{record.train_loss:.4g}", valid=f"{record.valid_loss:.4g}")
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
            if self.history.bad_epochs >= config.patience:
                stopped_early = True
                break
        result = TrainResult(
            self.output,
            config.target,
            self.history,
            len(self.history.train_loss),
            sum(self.history.epoch_seconds),
            stopped_early,
        )
        for callback in self.callbacks:
            callback.on_train_end(self, result)
        return result

    def _build(self, model: OpenUnmix) -> None:
        config = self.config
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            factor=config.lr_decay_gamma,
            patience=config.lr_decay_patience,
            cooldown=config.lr_decay_cooldown,
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
        history.lr.append(lr)
        history.epoch_seconds.append(seconds)
        if is_best:
            save_torch(self.model.state_dict(), self.output / f"{self.config.target}.pth")
        self._save_checkpoint(epoch)
        self._write_model_json()
        return EpochRecord(
            epoch, train_loss, valid_loss, lr, seconds, len(self.train_set) / train_seconds, is_best
        )

    def _loss(self, mixture: Tensor, target: Tensor) -> Tensor:
        """MSE of target magnitudes; audio is ``(nb_samples, nb_channels, nb_timesteps)``."""
        mixture, target = mixture.to(self.device), target.to(self.device)
        estimate = self.model(self.encoder(mixture))
        return nn.functional.mse_loss(estimate, self.encoder(target))

    def _train_one_epoch(self, epoch: int) -> float:
        self.model.train()
        self.train_set.set_epoch(epoch)
        loader = DataLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            shuffle=True,
            drop_last=False,
            num_workers=self.config.nb_workers,
            generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch),
        )
        total, count = 0.0, 0
        for mixture, target in tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False):
            self.optimizer.zero_grad()
            loss = self._loss(mixture, target)
            if not torch.isfinite(loss):
                raise self._diverged(f"training loss became {loss.item()} in epoch {epoch}")
            loss.backward()
            self.optimizer.step()
            total += loss.item() * mixture.shape[0]
            count += mixture.shape[0]
        return total / count

    @torch.no_grad()
    def _validate(self) -> float:
        self.model.eval()
        losses = [
            self._loss(mixture[None], target[None]).item() for mixture, target in self.valid_set
        ]
        loss = sum(losses) / len(losses)
        if not math.isfinite(loss):
            raise self._diverged(f"validation loss became {loss}")
        return loss

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

    def _save_checkpoint(self, epoch: int) -> None:
        save_torch(
            {
                "epoch": epoch,
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": asdict(self.history),
                "rng": torch.get_rng_state(),
                "config": self.config.model_dump(mode="json"),
            },
            self.checkpoint_path,
        )

    def _restore(self) -> int:
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        saved = {k: v for k, v in state["config"].items() if k not in RESUMABLE}
        current = {
            k: v for k, v in self.config.model_dump(mode="json").items() if k not in RESUMABLE
        }
        changed = sorted(k for k in current if saved.get(k) != current[k])
        if changed:
            raise UnmixlabError(
                f"checkpoint was trained with other settings ({', '.join(changed)})",
                "Resume with the same settings; only --epochs, --patience, --nb-workers may change",
                self.checkpoint_path,
            )
        self._build(OpenUnmix(self.config.model()))
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = History(**state["history"])
        torch.set_rng_state(state["rng"])
        return int(state["epoch"]) + 1

    def _write_model_json(self) -> None:
        config = self.config
        history = self.history
        write_json(
            self.output / f"{config.target}.json",
            {
                "args": config.model_dump(mode="json"),
                "model": config.model().model_dump(),
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
        write_separator_json(
            self.output, config.sample_rate, config.nfft, config.nhop, config.nb_channels
        )


# settings that may change between an interrupted run and its resumption
RESUMABLE = {"epochs", "patience", "nb_workers", "output", "cache_dir", "root", "device"}


def train(
    config: TrainConfig, resume: bool = False, callbacks: list[TrainingCallback] | None = None
) -> TrainResult:
    """Prepare the data of ``config`` and train its target: the whole ``unmixlab train``."""
    return Trainer(config, prepare_data(config), callbacks).fit(resume=resume)
