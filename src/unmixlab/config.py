"""Typed, frozen training configuration in groups; defaults equal the reference ``train.py``.

A :class:`TrainConfig` is four groups, each owned by the step that uses it:

- ``data`` (:class:`DataConfig`): what :func:`unmixlab.prepare.prepare` decodes and caches;
- ``model`` (:class:`ModelSettings`): the spectrogram and the network;
- ``optim`` (:class:`OptimConfig`): what the optimiser and the sampler do with the data;
- ``run`` (:class:`RunConfig`): which target, for how long, where and on what device; the only
  group a resumed training may change.

Field names are unique across groups, so every field maps to one flat ``unmixlab train`` flag
(``hidden_size`` -> ``--hidden-size``) and ``TrainConfig(hidden_size=128)`` works.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from unmixlab.device import DEVICE_HELP, check_device_spec
from unmixlab.model import ModelConfig
from unmixlab.transforms import bandwidth_to_max_bin

TARGETS = ("vocals", "drums", "bass", "other")
Target = Literal[TARGETS]
STEMS = ("mixture", *TARGETS)
DEFAULT_BANDWIDTH = 16000.0  # the reference's crop, in Hz


def default_bandwidth(sample_rate: float) -> float:
    """The crop when ``--bandwidth`` is unset: 16 kHz, or the Nyquist frequency below that."""
    return min(DEFAULT_BANDWIDTH, sample_rate / 2)


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Group):
    """The data set and how it is decoded and split: everything that keys the prepared data."""

    root: Path | None = Field(
        None, description="MUSDB18 folder (stems .mp4, or HQ wav with --is-wav)"
    )
    is_wav: bool = Field(False, description="the root holds MUSDB18-HQ wav folders, not .stem.mp4")
    sample_rate: int = Field(44100, ge=8000, description="training sample rate in Hz")
    nb_channels: int = Field(2, ge=1, le=2, description="1 (mono) or 2 (stereo)")
    valid_tracks: tuple[str, ...] = Field((), description="validation track names (non-MUSDB data)")
    valid_count: int = Field(1, ge=1, description="validation tracks when no names are given")
    cache: bool = Field(True, description="decode each track once into a memory-mapped cache")
    cache_dir: Path | None = Field(None, description="cache folder (default ROOT/.unmixlab-cache)")

    def cache_folder(self) -> Path:
        """Where the decoded caches of ``root`` live."""
        return self.cache_dir or Path(self.root) / ".unmixlab-cache"


class ModelSettings(_Group):
    """The spectrogram and the network; :meth:`TrainConfig.architecture` builds its shape."""

    nfft: int = Field(4096, ge=16)
    nhop: int = Field(1024, ge=1)
    hidden_size: int = Field(512, ge=2)
    nb_layers: int = Field(3, ge=1)
    bandwidth: float = Field(
        DEFAULT_BANDWIDTH,
        gt=0,
        description="input crop in Hz (unset: 16000, or the Nyquist frequency of a lower rate)",
    )
    unidirectional: bool = Field(False, description="causal LSTM (real-time capable)")

    @model_validator(mode="after")
    def _check(self) -> "ModelSettings":
        if self.nhop >= self.nfft:
            raise ValueError(f"nhop ({self.nhop}) must be smaller than nfft ({self.nfft})")
        return self


class OptimConfig(_Group):
    """Adam, its learning-rate schedule, and how training chunks are drawn (seeded)."""

    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    lr_decay_patience: int = Field(80, ge=0, description="ReduceLROnPlateau patience")
    lr_decay_gamma: float = Field(0.3, gt=0, le=1, description="ReduceLROnPlateau factor")
    lr_decay_cooldown: int = Field(10, ge=0, description="ReduceLROnPlateau cooldown")
    weight_decay: float = Field(1e-5, ge=0)
    seed: int = Field(42)
    seq_dur: float = Field(6.0, gt=0, description="training chunk length in seconds")
    samples_per_track: int = Field(64, ge=1, description="training chunks per track per epoch")
    random_track_mix: bool = Field(False, description="mix stems of different tracks")
    augment: bool = Field(True, description="random gain and channel swap per stem")


class RunConfig(_Group):
    """Which target, the epoch budget, and where and how it runs (may change on resume)."""

    target: Target = Field("vocals", description="source to learn")
    epochs: int = Field(1000, ge=1, description="maximum number of epochs")
    patience: int = Field(140, ge=1, description="early stopping: epochs without improvement")
    nb_workers: int = Field(0, ge=0, description="data-loader processes")
    output: Path = Field(Path("open-unmix"), description="folder for the model and checkpoints")
    device: str = Field("auto", description=f"torch device: {DEVICE_HELP}")
    amp: Literal["off", "fp16", "bf16"] = Field(
        "off", description="mixed precision (autocast; fp16 with a gradient scaler)"
    )
    deterministic: bool = Field(False, description="bit-exact kernels (slower on the GPU)")
    wait_for_lock: bool = Field(
        False,
        description="when another training writes this target into --output, wait for it "
        "to end instead of stopping",
    )

    _device = field_validator("device")(check_device_spec)


GROUPS: dict[str, type[_Group]] = {
    "data": DataConfig,
    "model": ModelSettings,
    "optim": OptimConfig,
    "run": RunConfig,
}
# flat field name -> its group; names are unique across groups (checked below)
GROUP_OF = {name: group for group, cls in GROUPS.items() for name in cls.model_fields}
if len(GROUP_OF) != sum(len(cls.model_fields) for cls in GROUPS.values()):
    raise RuntimeError("a TrainConfig field name repeats across groups")


class TrainConfig(BaseModel):
    """One training run of one target, as the reference ``scripts/train.py`` describes it.

    Built from groups (``TrainConfig(data=..., run=...)``) or flat fields
    (``TrainConfig(root=..., hidden_size=128)``); :meth:`flat` gives the flat view back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSettings = Field(default_factory=ModelSettings)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_fields(cls, values: Any) -> Any:
        """Route flat field names (``hidden_size``) into their group (``model``).

        An unset bandwidth follows the sample rate (:func:`default_bandwidth`).
        """
        if not isinstance(values, dict):
            return values
        grouped: dict[str, Any] = {}
        for key, value in values.items():
            if key in GROUPS:
                is_model = isinstance(value, BaseModel)
                current = value.model_dump(exclude_unset=True) if is_model else dict(value)
                grouped[key] = {**current, **grouped.get(key, {})}
            elif key in GROUP_OF:
                grouped.setdefault(GROUP_OF[key], {})[key] = value
            else:
                grouped[key] = value  # refused by extra="forbid", naming the key
        return _with_bandwidth(grouped)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.model.bandwidth > self.data.sample_rate / 2:
            raise ValueError(
                f"bandwidth {self.model.bandwidth} Hz exceeds the Nyquist frequency of "
                f"{self.data.sample_rate} Hz audio; lower --bandwidth"
            )
        self.architecture()  # must be buildable (e.g. an even hidden size if bidirectional)
        return self

    @staticmethod
    def fields() -> dict[str, FieldInfo]:
        """Every flat field, group by group: the ``unmixlab train`` flags."""
        return {name: info for cls in GROUPS.values() for name, info in cls.model_fields.items()}

    def flat(self) -> dict[str, Any]:
        """The flat settings as JSON values: the reference's ``args``, MLflow's params."""
        groups = (getattr(self, group).model_dump(mode="json") for group in GROUPS)
        return {name: value for group in groups for name, value in group.items()}

    def updated(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some flat fields changed (``updated(epochs=3)``)."""
        groups = {group: getattr(self, group).model_dump() for group in GROUPS}
        if self.model.bandwidth == default_bandwidth(self.data.sample_rate):
            del groups["model"]["bandwidth"]  # the default follows a changed sample rate
        return TrainConfig.model_validate({**groups, **changes})

    @property
    def max_bin(self) -> int:
        """Input bins kept by the bandwidth crop."""
        return bandwidth_to_max_bin(self.data.sample_rate, self.model.nfft, self.model.bandwidth)

    def architecture(self) -> ModelConfig:
        """The network's shape: the model settings at the data's rate and channels."""
        return ModelConfig(
            nb_bins=self.model.nfft // 2 + 1,
            nb_channels=self.data.nb_channels,
            hidden_size=self.model.hidden_size,
            nb_layers=self.model.nb_layers,
            unidirectional=self.model.unidirectional,
            max_bin=self.max_bin,
        )


def _with_bandwidth(grouped: dict[str, Any]) -> dict[str, Any]:
    """``grouped`` with the model's bandwidth set from the sample rate when it was not given."""
    model, data = grouped.get("model", {}), grouped.get("data", {})
    if not isinstance(model, dict) or "bandwidth" in model:
        return grouped
    if isinstance(data, BaseModel):
        rate = data.sample_rate
    else:
        rate = data.get("sample_rate", DataConfig.model_fields["sample_rate"].default)
    if not isinstance(rate, int | float):
        return grouped  # refused by the data group's validation
    return {**grouped, "model": {**model, "bandwidth": default_bandwidth(rate)}}
