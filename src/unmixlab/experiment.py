"""Experiment presets: one validated, frozen settings object per pipeline run.

A preset is a YAML file (shipped ones: package data ``unmixlab/presets/<name>.yaml``) holding an
:class:`ExperimentConfig`; ``key=value`` overrides with dotted keys
(``train.hidden_size=128``, values read as YAML scalars) change it before validation.
A mistyped key, in the file or an override, is an error naming the key.
"""

import importlib.resources
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    model_validator,
)

from unmixlab.config import GROUP_OF, GROUPS, DataConfig, Target, TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.step_settings import EvaluateSettings, PromoteSettings
from unmixlab.study.settings import StudySettings
from unmixlab.synth import SynthSettings
from unmixlab.tracking.names import changed_settings, training_run_name
from unmixlab.tuning.settings import TuneConfig


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSettings(_Settings):
    """Where the MUSDB-format data set is, and how to make it if it is synthetic."""

    root: Path | None = Field(None, description="MUSDB18 folder holding train/ and test/")
    is_wav: bool = Field(False, description="the root holds MUSDB18-HQ wav folders")
    synth: SynthSettings | None = Field(
        None, description="synthesise the data set into root when root does not exist"
    )
    cache_dir: Path | None = Field(None, description="decoded cache (default ROOT/.unmixlab-cache)")


# TrainConfig fields the experiment sets per run, and the setting that sets them: the data
# set's location (the `data` section) and the arguments of ExperimentConfig.train_config
DERIVED_TRAIN_FIELDS = {
    **{name: f"data.{name}" for name in DataSettings.model_fields if name in GROUP_OF},
    "target": "targets",
    "output": "output",
}


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
        defaults = TrainConfig().flat()
        derived = sorted(
            k
            for k in set(train) & set(DERIVED_TRAIN_FIELDS)
            if TrainConfig(**{k: train[k]}).flat()[k] != defaults[k]
        )
        if derived:
            where = ", ".join(f"{DERIVED_TRAIN_FIELDS[k]} instead of train.{k}" for k in derived)
            raise ValueError(f"set {where}")
        train = {k: v for k, v in train.items() if k not in DERIVED_TRAIN_FIELDS}
        return {**values, "train": train}

    @field_serializer("train")
    def _flat_train(self, train: TrainConfig) -> dict[str, Any]:
        """``train`` dumps flat, as presets write it."""
        return train.flat()

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

    def data_config(self) -> DataConfig:
        """The data group every training shares: ``train``'s settings at ``data``'s location."""
        location = {name: getattr(self.data, name) for name in DataSettings.model_fields}
        return self.train.data.model_copy(
            update={k: v for k, v in location.items() if k in DataConfig.model_fields}
        )

    def train_config(self, target: str, output: Path) -> TrainConfig:
        """The training settings of one target, writing its model into ``output``."""
        run = self.train.run.model_copy(update={"target": target, "output": Path(output)})
        return self.train.model_copy(update={"data": self.data_config(), "run": run})


def presets_dir() -> Path:
    """The folder of the shipped presets, package data of ``unmixlab``."""
    return Path(str(importlib.resources.files("unmixlab") / "presets"))


def available_presets(folder: Path | None = None, flow: str | None = None) -> list[str]:
    """Names of the presets in ``folder`` (default: the shipped presets).

    Args:
        folder: where the presets live.
        flow: only the presets made for this flow: ``tuning`` (a ``tune`` section),
            ``study`` (a ``study`` section) or ``training`` (neither); None: all.
    """
    paths = sorted((folder or presets_dir()).glob("*.yaml"))
    if flow is None:
        return [p.stem for p in paths]
    sections = {"tuning": "tune", "study": "study"}
    names = []
    for path in paths:
        raw = yaml.safe_load(path.read_text()) or {}
        made_for = next((f for f, key in sections.items() if key in raw), "training")
        if made_for == flow:
            names.append(path.stem)
    return names


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
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise UnmixlabError(
            f"is not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start})",
            "Save the preset as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            path,
        ) from None
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


def overridden(preset: str | Path, overrides: Sequence[str] | None, target: str) -> dict:
    """The flat training settings of ``target`` that the ``train.`` overrides change in ``preset``.

    What a run name shows first (:func:`unmixlab.tracking.names.training_run_name`); the other
    overrides (``data.root=...``, which some presets require) are part of both sides.
    """
    if not overrides:
        return {}
    rest = [override for override in overrides if not override.startswith("train.")]
    plain = load_preset(preset, rest).train_config(target, Path())
    ours = load_preset(preset, overrides).train_config(target, Path())
    return changed_settings(plain.flat(), ours.flat())


def run_name(
    preset: str | Path, overrides: Sequence[str] | None, train: TrainConfig, first: str = ""
) -> str:
    """The MLflow name of ``train``, a training of ``preset`` with ``overrides``.

    What the overrides change comes first, after ``first`` (a study's configuration).
    """
    changed = overridden(preset, overrides, train.run.target)
    name = load_preset(preset, overrides).name
    return training_run_name(train.flat(), name, changed, first)


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
    if loc[:1] == ["train"] and loc[1:2] and loc[1] in GROUPS and len(loc) > 2:
        del loc[1]  # a training setting is named flat: train.hidden_size
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
    if model is TrainConfig:
        return [k for k in TrainConfig.fields() if k not in DERIVED_TRAIN_FIELDS]
    return list(model.model_fields)


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The pydantic model in ``annotation`` (``Model`` or ``Model | None``), if any."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return next(filter(None, map(_model_of, typing.get_args(annotation))), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
