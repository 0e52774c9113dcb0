"""Experiment presets: one validated, frozen settings object per pipeline run.

A preset is a YAML file (``pipelines/presets/<name>.yaml``) holding an
:class:`ExperimentConfig`; ``key=value`` overrides with dotted keys
(``train.hidden_size=128``, values read as YAML scalars) change it before validation.
A mistyped key, in the file or an override, is an error naming the key.
"""

import importlib.util
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.study import StudySettings
from unmixlab.tuning.settings import TuneConfig

Target = Literal["vocals", "drums", "bass", "other"]

# TrainConfig fields the experiment sets per run (from `data`, `targets` and the run folder)
DERIVED_TRAIN_FIELDS = {
    "root": "data.root",
    "is_wav": "data.is_wav",
    "cache_dir": "data.cache_dir",
    "target": "targets",
    "output": "output",
}


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SynthSettings(_Settings):
    """A synthetic data set made when ``data.root`` does not exist yet (``unmixlab data synth``)."""

    tracks: int = Field(8, ge=1, description="train tracks")
    seconds: float = Field(12.0, ge=1.0, description="duration of each track")
    seed: int = Field(0, description="seed of every random choice")
    sample_rate: int = Field(44100, ge=8000, description="sample rate of the wav files in Hz")
    test_tracks: int | None = Field(None, ge=1, description="test tracks (default tracks // 4)")


class DataSettings(_Settings):
    """Where the MUSDB-format data set is, and how to make it if it is synthetic."""

    root: Path | None = Field(None, description="MUSDB18 folder holding train/ and test/")
    is_wav: bool = Field(False, description="the root holds MUSDB18-HQ wav folders")
    synth: SynthSettings | None = Field(
        None, description="synthesise the data set into root when root does not exist"
    )
    cache_dir: Path | None = Field(None, description="decoded cache (default ROOT/.unmixlab-cache)")


class EvaluateSettings(_Settings):
    """museval scoring of the trained models on the test tracks."""

    enabled: bool = Field(True, description="score the models on the test tracks")
    subset: Literal["test", "train"] = Field("test", description="tracks to score")
    workers: int | None = Field(None, ge=1, description="scoring processes (default min(2, cpus))")
    niter: int = Field(1, ge=0, description="Wiener filter iterations")
    residual: bool = Field(False, description="also report the accompaniment/residual scores")
    excerpt_seconds: float = Field(
        15.0, ge=0, description="excerpts per track on the listening page (0: none)"
    )


class PromoteSettings(_Settings):
    """Registering each target's model and moving its ``champion`` alias."""

    enabled: bool = Field(True, description="register the models and promote the best")
    metric: str = Field(
        "test_sdr_{target}", description="MLflow metric deciding the champion ({target} filled in)"
    )
    greater_is_better: bool = Field(True, description="higher metric values are better")

    def metric_for(self, target: str) -> str:
        """The metric name for one target."""
        return self.metric.format(target=target)


class ExperimentConfig(_Settings):
    """One pipeline run: data, targets, training settings, evaluation and promotion.

    ``train`` holds every :class:`TrainConfig` setting except those the experiment derives
    (see :data:`DERIVED_TRAIN_FIELDS`); :meth:`train_config` fills those in per target.
    """

    name: str = Field(description="preset name")
    description: str = Field("", description="what this preset is for")
    experiment: str = Field("unmixlab", description="MLflow experiment name")
    targets: tuple[Target, ...] = Field(("vocals",), min_length=1, description="targets to train")
    output: Path = Field(Path("runs"), description="folder for the models and evaluations")
    data: DataSettings = Field(default_factory=DataSettings)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    promote: PromoteSettings = Field(default_factory=PromoteSettings)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    study: StudySettings = Field(default_factory=StudySettings)

    @model_validator(mode="before")
    @classmethod
    def _no_derived_train_fields(cls, values: Any) -> Any:
        """Refuse ``train.target`` and the like; defaults (a dumped config) pass, dropped."""
        train = values.get("train") if isinstance(values, dict) else None
        if not isinstance(train, dict):
            return values
        defaults = TrainConfig().model_dump(mode="json")
        derived = sorted(
            k
            for k in set(train) & set(DERIVED_TRAIN_FIELDS)
            if TrainConfig(**{k: train[k]}).model_dump(mode="json")[k] != defaults[k]
        )
        if derived:
            where = ", ".join(f"{DERIVED_TRAIN_FIELDS[k]} instead of train.{k}" for k in derived)
            raise ValueError(f"set {where}")
        train = {k: v for k, v in train.items() if k not in DERIVED_TRAIN_FIELDS}
        return {**values, "train": train}

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets repeat: {list(self.targets)}")
        if self.data.root is None:
            raise ValueError("data.root is required: the MUSDB18 folder (--set data.root=DIR)")
        if self.data.synth is not None and not self.data.is_wav:
            raise ValueError("synthetic data is wav: set data.is_wav=true")
        if self.promote.enabled and not self.evaluate.enabled and "test_" in self.promote.metric:
            raise ValueError(
                f"promote.metric {self.promote.metric} needs evaluate.enabled=true "
                "(or promote on another metric, or promote.enabled=false)"
            )
        return self

    def train_config(self, target: str, output: Path) -> TrainConfig:
        """The training settings of one target, writing its model into ``output``."""
        values = self.train.model_dump(exclude=set(DERIVED_TRAIN_FIELDS))
        values |= {
            "root": self.data.root,
            "is_wav": self.data.is_wav,
            "cache_dir": self.data.cache_dir,
            "target": target,
            "output": output,
        }
        return TrainConfig(**values)


def presets_dir() -> Path:
    """The folder of the shipped presets, ``pipelines/presets`` (found without importing it)."""
    spec = importlib.util.find_spec("pipelines")
    if spec is None or not spec.submodule_search_locations:
        raise UnmixlabError(
            "the pipelines package (holding the presets) is not installed",
            "Install unmixlab with `pip install -e .`, or pass a preset file path",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "presets"


def available_presets(folder: Path | None = None) -> list[str]:
    """Names of the presets in ``folder`` (default: the shipped presets)."""
    return sorted(p.stem for p in (folder or presets_dir()).glob("*.yaml"))


def load_preset(
    name_or_path: str | Path,
    overrides: Sequence[str] | None = None,
    folder: Path | None = None,
) -> ExperimentConfig:
    """Load a preset by name (from ``folder``, default the shipped presets) or path.

    Args:
        name_or_path: a preset name (``quickstart``) or a YAML file.
        overrides: ``key=value`` strings with dotted keys, e.g. ``train.hidden_size=128``;
            values are parsed as YAML (``true``, ``3``, ``[vocals, drums]``).
        folder: where named presets live.

    Raises:
        UnmixlabError: unknown preset, bad YAML, a malformed override, an unknown key or an
            invalid value (the message names the key).
    """
    path = Path(name_or_path)
    if not path.is_file():
        folder = folder or presets_dir()
        path = folder / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnmixlabError(
                f"no preset named '{name_or_path}'",
                f"Pick one of {', '.join(available_presets(folder)) or '(none)'}, "
                "or pass a YAML file",
                folder,
            )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UnmixlabError(f"not valid YAML ({error})", "Fix the file", path) from error
    if not isinstance(raw, dict):
        raise UnmixlabError("a preset must be a mapping of settings", "Fix the file", path)
    raw.setdefault("name", path.stem)
    for override in overrides or ():
        _apply_override(raw, override)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise _explain(error, path) from error


def experiment_schema() -> dict[str, Any]:
    """The JSON schema of a preset file."""
    return ExperimentConfig.model_json_schema()


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in the nested ``raw`` mapping."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise UnmixlabError(
            f"override '{override}' is not key=value", "Write it as e.g. train.hidden_size=128"
        )
    *parents, leaf = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise UnmixlabError(
                f"override '{override}': {where} is a value, not a section",
                f"Set {where}=... directly",
            )
        node = child
    try:
        node[leaf] = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise UnmixlabError(
            f"override '{override}': value is not valid YAML ({error})", "Quote or fix the value"
        ) from error


def _explain(error: ValidationError, path: Path) -> UnmixlabError:
    """One clear message for the first validation problem, naming the dotted key."""
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"] if not isinstance(part, int)]
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        valid = _keys_at(loc[:-1])
        return UnmixlabError(
            f"unknown setting '{key}'",
            f"Check the spelling in the preset or --set; valid keys here: {', '.join(valid)}",
            path,
        )
    message = first["msg"].removeprefix("Value error, ")
    return UnmixlabError(
        f"invalid setting{f' {key}' if key else ''}: {message}",
        "Fix it in the preset or with --set key=value",
        path,
    )


def _keys_at(loc: list[str]) -> list[str]:
    """Field names of the settings section at ``loc`` (``[]`` for the top level)."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(part)
        nested = _model_of(field.annotation) if field else None
        if nested is None:
            return []
        model = nested
    keys = list(model.model_fields)
    if model is TrainConfig:
        keys = [k for k in keys if k not in DERIVED_TRAIN_FIELDS]
    return keys


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The pydantic model in ``annotation`` (``Model`` or ``Model | None``), if any."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return next(filter(None, map(_model_of, typing.get_args(annotation))), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
