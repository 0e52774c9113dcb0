"""The ``tune`` section of an experiment: what Optuna searches, how, and where the study lives.

A preset writes it as::

    tune:
      trials: 20                  # finished (complete or pruned) trials over all workers
      epochs: 10                  # epochs per trial (default: train.epochs)
      objective: loss             # or "loss,time" / "loss,rtf" (Pareto front, no pruning)
      pruner: median              # or "hyperband" / "none"
      space:                      # TrainConfig field -> choices, or a float range
        hidden_size: [128, 256, 512]
        batch_size: [4, 8, 16, 32]
        samples_per_track: [32, 64, 128]
        unidirectional: [false, true]
        lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        nb_layers: [2, 3]         # any TrainConfig hyperparameter may join
      enqueue:                    # tried first, e.g. the current configuration
        - {hidden_size: 512, batch_size: 16}
      storage: sqlite:///optuna.db  # or postgresql://USER@HOST/DB, or a journal file path

Objectives, all minimised: ``loss`` is the trial's best validation loss; ``time`` the mean
wall-clock seconds per epoch (compare it between trials run under the same load, e.g. one
worker per machine); ``rtf`` the offline separator's real-time factor (logged as ``cpu_rtf``,
distinct from a stream's wall-clock ``stream_rtf``), measured in CPU time
on one thread, so parallel workers do not inflate it.

The space given is laid over the default space (the first five entries above), so
``--set tune.space.hidden_size=[64,128]`` changes one dimension and keeps the others;
``null`` drops a dimension (``--set tune.space.unidirectional=null``): it stays at its
``train`` value.
"""

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from unmixlab.config import GROUPS, Target, TrainConfig

Choice = bool | int | float | str
# objective name -> the metric each component minimises
OBJECTIVES = {"loss": ("loss",), "loss,time": ("loss", "time"), "loss,rtf": ("loss", "rtf")}
# hyperparameters: the model and optimisation groups (not the data, nor the run's budget)
TUNABLE = frozenset(name for group in ("model", "optim") for name in GROUPS[group].model_fields)


# objective component -> the name plots and MLflow give it
METRIC_NAMES = {"loss": "valid_loss", "time": "seconds_per_epoch", "rtf": "cpu_rtf"}


class FloatRange(BaseModel):
    """A continuous hyperparameter, sampled uniformly (or log-uniformly) in ``[low, high]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "FloatRange":
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must exceed low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


Dimension = list[Choice] | FloatRange


def default_space() -> dict[str, Dimension]:
    """The issue's default: hidden and batch size, samples per track, direction, lr."""
    return {
        "hidden_size": [128, 256, 512],
        "batch_size": [4, 8, 16, 32],
        "samples_per_track": [32, 64, 128],
        "unidirectional": [False, True],
        "lr": FloatRange(low=1e-4, high=1e-2, log=True),
    }


class TuneConfig(BaseModel):
    """How a study searches the training configuration (defaults: a 20-trial loss study)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trials: int = Field(20, ge=1, description="finished trials (complete or pruned), all workers")
    target: Target | None = Field(
        None, description="target whose model is tuned (default: the first of targets)"
    )
    epochs: int | None = Field(None, ge=1, description="epochs per trial (default train.epochs)")
    objective: Literal["loss", "loss,time", "loss,rtf"] = Field(
        "loss", description="minimise validation loss, or loss against seconds per epoch / RTF"
    )
    space: dict[str, Dimension] = Field(default_factory=default_space)
    enqueue: tuple[dict[str, Choice], ...] = Field(
        (), description="configurations tried first (values may lie outside the space)"
    )
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = Field(5, ge=0, description="median pruner: trials before pruning")
    warmup_epochs: int = Field(1, ge=0, description="median pruner: epochs before pruning")
    reduction_factor: int = Field(3, ge=2, description="hyperband reduction factor")
    seed: int = Field(0, description="sampler seed (worker i uses seed + i)")
    study_name: str | None = Field(None, description="default: the preset's name")
    storage: str | None = Field(
        None, description="sqlite:///..., postgresql://... or a journal file (default ./optuna.db)"
    )
    workers: int = Field(1, ge=1, description="worker processes started on this machine")
    heartbeat_seconds: int = Field(30, ge=1, description="database storage: trial heartbeat")
    grace_seconds: int | None = Field(
        None, ge=1, description="a trial without heartbeat this long is failed (default 2x)"
    )
    rtf_seconds: float = Field(8.0, gt=0, description="clip length for the real-time factor")
    report_wait_seconds: int | None = Field(
        None,
        ge=0,
        description="most seconds the report waits for other workers' running trials "
        "(default: no limit on a database, where a dead worker's trial fails by heartbeat; "
        "300 on a journal file, which has no heartbeat)",
    )
    train_best: bool = Field(False, description="train, evaluate and promote the best trial")

    @field_validator("space", mode="before")
    @classmethod
    def _over_defaults(cls, space: object) -> object:
        if not isinstance(space, dict):
            return space
        merged = {**default_space(), **space}
        return {name: dimension for name, dimension in merged.items() if dimension is not None}

    @field_serializer("space")
    def _with_dropped(self, space: dict[str, Dimension]) -> dict[str, Dimension | None]:
        return {**{name: None for name in default_space() if name not in space}, **space}

    @field_validator("space")
    @classmethod
    def _known_fields(cls, space: dict[str, Dimension]) -> dict[str, Dimension]:
        if not space:
            raise ValueError("tune.space searches nothing")
        for name, dimension in space.items():
            if name not in TrainConfig.fields():
                raise ValueError(f"tune.space.{name} is not a training setting")
            if name not in TUNABLE:
                raise ValueError(f"tune.space.{name} is not a hyperparameter")
            values = (
                [dimension.low, dimension.high]
                if isinstance(dimension, FloatRange)
                else (dimension)
            )
            if not values:
                raise ValueError(f"tune.space.{name} has no choices")
            for value in values:
                try:
                    TrainConfig(**{name: value})
                except ValidationError as error:
                    raise ValueError(
                        f"tune.space.{name}: {value!r} is invalid ({error.errors()[0]['msg']})"
                    ) from error
        return space

    @model_validator(mode="after")
    def _enqueued_in_space(self) -> "TuneConfig":
        for params in self.enqueue:
            for name, value in params.items():
                dimension = self.space.get(name)
                if dimension is None:
                    raise ValueError(f"tune.enqueue sets {name}, which tune.space does not search")
                if isinstance(dimension, list) and value not in dimension:
                    raise ValueError(f"tune.enqueue sets {name}={value!r}, not one of {dimension}")
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        """What each objective component measures: ``loss``, ``time`` or ``rtf``."""
        return OBJECTIVES[self.objective]

    @property
    def multi_objective(self) -> bool:
        """Two objectives: a Pareto front, and no pruning (Optuna cannot prune them)."""
        return len(self.metrics) > 1
