"""The study's settings: its grid of configurations, and the trainings it plans.

The independent variables are :data:`INDEPENDENT`; the control variables (:data:`CONTROL`)
stay at the preset's ``train`` values for every run.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError

if TYPE_CHECKING:
    from unmixlab.experiment import ExperimentConfig

# the study's independent variables, in the order the report shows them
Independent = Literal[
    "epochs",
    "nb_workers",
    "batch_size",
    "hidden_size",
    "samples_per_track",
    "unidirectional",
    "nfft",
    "nhop",
]
INDEPENDENT: tuple[str, ...] = get_args(Independent)
# the study's control variables (fixed by the preset's `train` section)
CONTROL = ("patience", "lr_decay_patience", "lr_decay_gamma", "bandwidth", "nb_channels")
# short names for generated configuration names and plot labels
ABBREVIATIONS = {
    "epochs": "ep",
    "nb_workers": "w",
    "batch_size": "bs",
    "hidden_size": "hs",
    "samples_per_track": "spt",
    "nfft": "nfft",
    "nhop": "hop",
}


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reference(_Settings):
    """What the seed study reported for one configuration (shown next to the measurement)."""

    loss: float | None = Field(None, description="the seed's loss")
    time: str | None = Field(None, description="the seed's training time, as it printed it")
    seconds: float | None = Field(None, gt=0, description="that time in seconds, as read")
    sdr: float | None = Field(None, description="the seed's museval SDR (dB)")
    sir: float | None = Field(None, description="the seed's museval SIR (dB)")
    isr: float | None = Field(None, description="the seed's museval ISR (dB)")
    sar: float | None = Field(None, description="the seed's museval SAR (dB)")


class Baseline(Reference):
    """A published model the seed scored beside its own (a row of its separation table)."""

    name: str = Field(min_length=1, description="the model, e.g. UMX (Original)")


class Configuration(_Settings):
    """One point of the grid: values of the independent variables (unset: the preset's)."""

    name: str = Field(min_length=1, description="label in MLflow and the report")
    epochs: int | None = Field(None, ge=1)
    nb_workers: int | None = Field(None, ge=0)
    batch_size: int | None = Field(None, ge=1)
    hidden_size: int | None = Field(None, ge=2)
    samples_per_track: int | None = Field(None, ge=1)
    unidirectional: bool | None = None
    nfft: int | None = Field(None, ge=16, description="STFT size (a low-latency setting)")
    nhop: int | None = Field(None, ge=1, description="STFT hop")
    block_hops: int = Field(
        2, ge=1, description="hops per streamed block when the real-time factor is measured"
    )
    reference: Reference | None = Field(None, description="the seed's numbers, if any")

    def overrides(self) -> dict[str, int | bool]:
        """The independent variables this configuration sets."""
        return {k: getattr(self, k) for k in INDEPENDENT if getattr(self, k) is not None}


class StudySettings(_Settings):
    """The ``study`` section of an experiment preset (see the module docstring)."""

    configurations: tuple[Configuration, ...] = Field(
        (), description="explicit configurations, in order"
    )
    grid: dict[Independent, list[int | bool]] = Field(
        default_factory=dict, description="every combination of these values (after the above)"
    )
    seeds: int = Field(1, ge=1, description="seeds per configuration (train.seed + i)")
    realtime: bool = Field(
        True, description="measure the real-time factor of unidirectional configurations"
    )
    realtime_seconds: float = Field(8.0, gt=0, description="clip length for the real-time factor")
    significance: float = Field(
        0.05, gt=0, lt=1, description="significance level of Welch's t-test (a p-value)"
    )
    notes: tuple[str, ...] = Field((), description="remarks printed in the report")
    baselines: tuple[Baseline, ...] = Field(
        (), description="published models the seed compared with"
    )
    reference_tracks: int = Field(
        86, ge=1, description="training tracks of the seed's runs (MUSDB18's train split)"
    )

    @model_validator(mode="after")
    def _check(self) -> "StudySettings":
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"study.grid.{name} has no values")
            if len(set(values)) != len(values):
                raise ValueError(f"study.grid.{name} repeats a value: {values}")
            for value in values:
                Configuration(name="grid", **{name: value})  # validates the value
        names = [c.name for c in expand(self)]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"study configurations repeat the name(s) {', '.join(repeated)}")
        return self


def expand(settings: StudySettings) -> list[Configuration]:
    """The study's configurations: the explicit ones, then the grid's combinations.

    Grid points are named after the values they set, e.g. ``bs16-hs256-bi``; with neither
    configurations nor grid the study has one configuration, ``base`` (the preset as is).
    """
    configurations = list(settings.configurations)
    keys = list(settings.grid)
    grid = itertools.product(*(settings.grid[k] for k in keys)) if keys else ()
    for values in grid:
        point = dict(zip(keys, values, strict=True))
        configurations.append(Configuration(name=label(point), **point))
    return configurations or [Configuration(name="base")]


def label(variables: dict[str, int | bool]) -> str:
    """A short name for values of independent variables: ``bs16-hs256-uni``."""
    parts = []
    for key in INDEPENDENT:
        if key not in variables:
            continue
        value = variables[key]
        if key == "unidirectional":
            parts.append("uni" if value else "bi")
        else:
            parts.append(f"{ABBREVIATIONS[key]}{value}")
    return "-".join(parts)


@dataclass(frozen=True)
class PlannedRun:
    """One training of the study: a configuration under one seed.

    Attributes:
        configuration: the grid point.
        seed: the training seed.
        config: the full training settings (model folder included).
    """

    configuration: Configuration
    seed: int
    config: TrainConfig


def plan(experiment: "ExperimentConfig", output: Path) -> list[PlannedRun]:
    """Every (configuration, seed) training of ``experiment``'s study, configuration-major.

    Models go to ``output/<configuration>/seed-<seed>``.

    Raises:
        UnmixlabError: the experiment names more than one target (a study compares one), or a
            configuration makes invalid training settings.
    """
    if len(experiment.targets) != 1:
        raise UnmixlabError(
            f"a study trains one target, the preset names {len(experiment.targets)}",
            "Set targets to one of them, e.g. --set 'targets=[vocals]'",
        )
    target = experiment.targets[0]
    settings = experiment.study
    seeds = [experiment.train.optim.seed + i for i in range(settings.seeds)]
    runs = []
    for configuration in expand(settings):
        for seed in seeds:
            base = experiment.train_config(target, output / configuration.name / f"seed-{seed}")
            try:
                config = base.updated(**configuration.overrides(), seed=seed)
            except ValueError as error:
                raise UnmixlabError(
                    f"configuration {configuration.name} is invalid ({error})",
                    "Fix it in the preset's study section",
                ) from error
            runs.append(PlannedRun(configuration, seed, config))
    return runs


def variables_of(config: TrainConfig) -> dict[str, int | bool]:
    """The values of the independent variables in ``config``."""
    flat = config.flat()
    return {k: flat[k] for k in INDEPENDENT}


@dataclass(frozen=True)
class StudyContext:
    """What the report says about how the study ran.

    Attributes:
        name: preset name.
        description: what the preset is for.
        experiment: MLflow experiment.
        study_run_id: the parent MLflow run holding the report.
        target: the trained target.
        data_root: the data set.
        fixed: settings every run shares (control variables first), name -> value.
        seeds: the seeds of each configuration.
        significance: the significance level of the t-tests.
        notes: remarks from the preset.
        command: the command that reproduces the study.
        wall_seconds: wall time of the whole study (training, scoring, report).
        created: when the report was made (ISO 8601).
        hardware: what trained the runs (GPU or CPU name, cores).
        data_size: the training data (tracks, duration, sample rate).
        baselines: published models the seed scored.
        reference_tracks: training tracks of the seed's runs.
        study_run_url: the parent run's page in the MLflow UI (the report links it).
    """

    name: str
    description: str
    experiment: str
    study_run_id: str
    target: str
    data_root: str
    fixed: dict[str, object]
    seeds: tuple[int, ...]
    significance: float
    notes: tuple[str, ...] = ()
    command: str = ""
    wall_seconds: float | None = None
    created: str = ""
    hardware: str = ""
    data_size: str = ""
    baselines: tuple[Baseline, ...] = ()
    reference_tracks: int = 86
    study_run_url: str = ""


# fixed settings shown in the report, after the control variables
SHOWN_SETTINGS = ("sample_rate", "nfft", "nhop", "seq_dur", "nb_layers", "lr", "weight_decay")


def fixed_settings(config: TrainConfig) -> dict[str, object]:
    """The control variables and the other shared settings of a study's runs."""
    flat = config.flat()
    return {k: flat[k] for k in (*CONTROL, *SHOWN_SETTINGS)}
