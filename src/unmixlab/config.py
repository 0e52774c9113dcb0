"""Typed, frozen training configuration; defaults equal the reference Open-Unmix ``train.py``.

Every field maps to one ``unmixlab train`` flag (``hidden_size`` -> ``--hidden-size``).
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from unmixlab.model import ModelConfig
from unmixlab.transforms import bandwidth_to_max_bin

TARGETS = ("vocals", "drums", "bass", "other")
STEMS = ("mixture", *TARGETS)


class TrainConfig(BaseModel):
    """One training run of one target, as the reference ``scripts/train.py`` describes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: Path | None = Field(
        None, description="MUSDB18 folder (stems .mp4, or HQ wav with --is-wav)"
    )
    is_wav: bool = Field(False, description="the root holds MUSDB18-HQ wav folders, not .stem.mp4")
    target: Literal["vocals", "drums", "bass", "other"] = Field(
        "vocals", description="source to learn"
    )
    epochs: int = Field(1000, ge=1, description="maximum number of epochs")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    patience: int = Field(140, ge=1, description="early stopping: epochs without improvement")
    lr_decay_patience: int = Field(80, ge=0, description="ReduceLROnPlateau patience")
    lr_decay_gamma: float = Field(0.3, gt=0, le=1, description="ReduceLROnPlateau factor")
    lr_decay_cooldown: int = Field(10, ge=0, description="ReduceLROnPlateau cooldown")
    weight_decay: float = Field(1e-5, ge=0)
    seed: int = Field(42)
    seq_dur: float = Field(6.0, gt=0, description="training chunk length in seconds")
    samples_per_track: int = Field(64, ge=1, description="training chunks per track per epoch")
    random_track_mix: bool = Field(False, description="mix stems of different tracks")
    augment: bool = Field(True, description="random gain and channel swap per stem")
    nfft: int = Field(4096, ge=16)
    nhop: int = Field(1024, ge=1)
    hidden_size: int = Field(512, ge=2)
    nb_layers: int = Field(3, ge=1)
    bandwidth: float = Field(16000.0, gt=0, description="input crop in Hz")
    nb_channels: int = Field(2, ge=1, le=2, description="1 (mono) or 2 (stereo)")
    nb_workers: int = Field(0, ge=0, description="data-loader processes")
    unidirectional: bool = Field(False, description="causal LSTM (real-time capable)")
    sample_rate: int = Field(44100, ge=8000, description="training sample rate in Hz")
    valid_tracks: tuple[str, ...] = Field((), description="validation track names (non-MUSDB data)")
    valid_count: int = Field(1, ge=1, description="validation tracks when no names are given")
    cache: bool = Field(True, description="decode each track once into a memory-mapped cache")
    cache_dir: Path | None = Field(None, description="cache folder (default ROOT/.unmixlab-cache)")
    output: Path = Field(Path("open-unmix"), description="folder for the model and checkpoints")
    device: str = Field("cpu", description="torch device")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.nhop >= self.nfft:
            raise ValueError(f"nhop ({self.nhop}) must be smaller than nfft ({self.nfft})")
        if self.bandwidth > self.sample_rate / 2:
            raise ValueError(
                f"bandwidth {self.bandwidth} Hz exceeds the Nyquist frequency of "
                f"{self.sample_rate} Hz audio; lower --bandwidth"
            )
        self.model()  # the architecture must be buildable (e.g. even hidden size if bidirectional)
        return self

    @property
    def max_bin(self) -> int:
        """Input bins kept by the bandwidth crop."""
        return bandwidth_to_max_bin(self.sample_rate, self.nfft, self.bandwidth)

    def model(self) -> ModelConfig:
        """The architecture this training configuration builds."""
        return ModelConfig(
            nb_bins=self.nfft // 2 + 1,
            nb_channels=self.nb_channels,
            hidden_size=self.hidden_size,
            nb_layers=self.nb_layers,
            unidirectional=self.unidirectional,
            max_bin=self.max_bin,
        )
