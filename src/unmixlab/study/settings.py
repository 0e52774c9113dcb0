"""The study's settings: its grid of configurations, and the trainings it plans.

The independent variables are :data:`INDEPENDENT`; the control variables (:data:`CONTROL`)
stay at the preset's ``train`` values for every run.
"""

import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError

if TYPE_CHECKING:
    from unmixlab.experiment import ExperimentConfig
    from unmixlab.study.measurements import Measurements
    from unmixlab.study.power import PowerAnalysis

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


Protocol = Literal["seed", "budget"]


class Configuration(_Settings):
    """One point of the grid: values of the independent variables (unset: the preset's)."""

    name: str = Field(min_length=1, description="label in MLflow and the report")
    protocol: Protocol = Field(
        "budget",
        description="budget: trained to the study's equal sample budget (the design that "
        "answers H1-H3); seed: epochs as the seed ran them (the replication, confound "
        "included)",
    )
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


class Budget(_Settings):
    """The equal training budget of the ``budget`` configurations, declared before the runs."""

    samples: int = Field(
        4096,
        ge=1,
        description="training samples (chunks) every budget configuration sees; epochs = "
        "ceil(samples / (samples per track x training tracks))",
    )
    lr_rule: Literal["constant"] = Field(
        "constant",
        description="learning rate against batch size: constant (Adam at train.lr for every "
        "batch size; a larger batch takes fewer, not larger, steps)",
    )


class AnalysisPlan(_Settings):
    """The analysis, fixed in the preset before the runs and printed in the report."""

    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of every test")
    correction: Literal["holm"] = Field("holm", description="multiple-comparison correction")
    power: float = Field(0.8, gt=0, lt=1, description="power the seed count is chosen for")
    sdr_margin_db: float = Field(
        0.5, gt=0, description="H2 non-inferiority margin: the most test SDR (dB) it may lose"
    )
    cost_margin: float = Field(
        1.25, gt=1, description="H1 time: the cost model holds within this factor per doubling"
    )
    sdr_slope_db: float = Field(
        0.5, gt=0, description="H1 loss: smallest SDR change per doubling worth detecting (dB)"
    )
    seed_sd_db: float = Field(
        0.3, gt=0, description="assumed seed-to-seed SD of test SDR (dB) for the power analysis"
    )
    cost_sd: float = Field(
        0.1, gt=0, description="assumed SD of log2 cost per sample between configurations"
    )
    min_test_tracks: int = Field(4, ge=1, description="test tracks the SDR outcomes need")
    min_valid_tracks: int = Field(4, ge=1, description="validation tracks training needs")
    h2_pair: tuple[str, str] | None = Field(
        None, description="H2's primary comparison: (bidirectional, unidirectional) names"
    )
    timing_repeats: int = Field(5, ge=2, description="timed training steps per configuration")
    timing_warmup: int = Field(2, ge=0, description="untimed steps before them")
    order_seed: int = Field(0, description="seed of the randomised, interleaved run order")


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
    budget: Budget = Field(default_factory=Budget, description="the design's equal budget")
    analysis: AnalysisPlan = Field(
        default_factory=AnalysisPlan, description="the analysis plan, fixed before the runs"
    )
    notes: tuple[str, ...] = Field((), description="remarks printed in the report")
    baselines: tuple[Baseline, ...] = Field(
        (), description="published models the seed compared with"
    )
    reference_tracks: int = Field(
        86, ge=1, description="training tracks of the seed's runs (MUSDB18's train split)"
    )
    workers: int = Field(
        1,
        ge=0,
        description="trainings at once: N worker processes here (0: one per visible GPU, "
        "1 without one), or N deployment runs at once with `deployment`",
    )
    deployment: str | None = Field(
        None,
        description="a Prefect deployment of the study-training flow ('study-training/<name>'): "
        "each training becomes one of its runs, picked up by any worker of its work pool",
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
        configurations = expand(self)
        timed = sorted(c.name for c in configurations if c.protocol == "budget" and c.epochs)
        if timed:
            raise ValueError(
                f"budget configuration(s) {', '.join(timed)} set epochs: the study's budget "
                "sets them (give protocol: seed to run epochs as the seed did)"
            )
        names = [c.name for c in configurations]
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

    def budget(self, train_tracks: int) -> "TrainingBudget":
        """Its training budget with ``train_tracks`` training tracks."""
        return TrainingBudget.of(self.config, train_tracks)


@dataclass(frozen=True)
class TrainingBudget:
    """What one training gets: epochs, optimiser steps and training samples.

    Attributes:
        epochs: passes over the data.
        samples_per_epoch: training chunks per epoch (samples per track x tracks).
        steps: optimiser steps over all epochs (a last, partial batch is a step).
        samples: training chunks over all epochs.
    """

    epochs: int
    samples_per_epoch: int
    steps: int
    samples: int

    @classmethod
    def of(cls, config: TrainConfig, train_tracks: int) -> "TrainingBudget":
        """The budget of ``config`` with ``train_tracks`` training tracks."""
        per_epoch = config.optim.samples_per_track * train_tracks
        epochs = config.run.epochs
        steps = epochs * math.ceil(per_epoch / config.optim.batch_size)
        return cls(epochs, per_epoch, steps, epochs * per_epoch)


def budget_epochs(samples: int, samples_per_track: int, train_tracks: int) -> int:
    """Epochs that give at least ``samples`` training chunks (ceil)."""
    return max(1, math.ceil(samples / (samples_per_track * train_tracks)))


def plan(
    experiment: "ExperimentConfig", output: Path, train_tracks: int | None = None
) -> list[PlannedRun]:
    """Every (configuration, seed) training of ``experiment``'s study, configuration-major.

    Models go to ``output/<configuration>/seed-<seed>``. With ``train_tracks`` (known once the
    data are prepared), budget configurations get the epochs of the study's sample budget;
    without, the preset's epochs.

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
            changes = configuration.overrides()
            if configuration.protocol == "budget" and train_tracks:
                spt = changes.get("samples_per_track", base.optim.samples_per_track)
                changes["epochs"] = budget_epochs(settings.budget.samples, spt, train_tracks)
            try:
                config = base.updated(**changes, seed=seed)
            except ValueError as error:
                raise UnmixlabError(
                    f"configuration {configuration.name} is invalid ({error})",
                    "Fix it in the preset's study section",
                ) from error
            runs.append(PlannedRun(configuration, seed, config))
    return runs


def interleave(runs: list[PlannedRun], seed: int) -> list[PlannedRun]:
    """``runs`` in a random order (seeded), so machine load cannot line up with configurations."""
    order = random.Random(seed).sample(range(len(runs)), len(runs))
    return [runs[i] for i in order]


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
        analysis: the analysis plan, fixed in the preset before the runs.
        budget: the design's equal training budget.
        stft: the preset's (nfft, nhop), the design's STFT.
        notes: remarks from the preset.
        command: the command that reproduces the study.
        wall_seconds: wall time of the whole study (training, scoring, report).
        created: when the report was made (ISO 8601).
        hardware: what trained the runs (GPU or CPU name, cores).
        data: what the data are, as (fact, value) pairs: synthetic or not, generator and seed,
            train / validation / test tracks and durations.
        baselines: the seed's own measurements of other models.
        reference_tracks: training tracks of the seed's runs.
        study_run_url: the parent run's page in the MLflow UI (the report links it).
        measurements: timing pass, run clocks, paced streams, baselines, parameter counts.
        power: the power analysis of the design at this seed count.
        protocols: (configuration, protocol) pairs: ``budget`` (the design) or ``seed``.
    """

    name: str
    description: str
    experiment: str
    study_run_id: str
    target: str
    data_root: str
    fixed: dict[str, object]
    seeds: tuple[int, ...]
    analysis: AnalysisPlan = AnalysisPlan()
    budget: Budget = Budget()
    stft: tuple[int, int] = (4096, 1024)
    notes: tuple[str, ...] = ()
    command: str = ""
    wall_seconds: float | None = None
    created: str = ""
    hardware: str = ""
    data: tuple[tuple[str, str], ...] = ()
    baselines: tuple[Baseline, ...] = ()
    reference_tracks: int = 86
    study_run_url: str = ""
    measurements: "Measurements | None" = None
    power: "PowerAnalysis | None" = None
    protocols: tuple[tuple[str, str], ...] = ()


# fixed settings shown in the report, after the control variables
SHOWN_SETTINGS = ("sample_rate", "nfft", "nhop", "seq_dur", "nb_layers", "lr", "weight_decay")


def fixed_settings(config: TrainConfig) -> dict[str, object]:
    """The control variables and the other shared settings of a study's runs."""
    flat = config.flat()
    return {k: flat[k] for k in (*CONTROL, *SHOWN_SETTINGS)}
