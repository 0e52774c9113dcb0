"""The evaluate and promote sections of an experiment, which their steps take whole.

:mod:`unmixlab.steps.evaluate` passes every :class:`EvaluateSettings` field to the scoring,
and ``unmixlab evaluate`` makes one flag of each: a new evaluate setting is a field here and
its use in :func:`unmixlab.evaluate.score_models`.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from unmixlab.device import DEVICE_HELP, check_device_spec
from unmixlab.quantize import Precision
from unmixlab.scoring import Scorer


class EvaluateSettings(BaseModel):
    """BSS Eval v4 scoring of the trained models on the test tracks (the evaluate step's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="score the models on the test tracks")
    subset: Literal["test", "train"] = Field("test", description="tracks to score")
    workers: int | None = Field(None, ge=1, description="scoring processes (default min(2, cpus))")
    niter: int = Field(1, ge=0, description="Wiener filter iterations")
    residual: bool = Field(False, description="also report the accompaniment/residual scores")
    excerpt_seconds: float = Field(
        15.0, ge=0, description="excerpts per track on the listening page (0: none)"
    )
    excerpt_start: float | None = Field(
        None,
        ge=0,
        description="seconds into each track where the excerpts start (default: centred)",
    )
    device: str | None = Field(
        None, description=f"where the models separate: {DEVICE_HELP} (default: the training's)"
    )
    precision: Precision = Field(
        "float32", description="weights of the linear and LSTM layers: int8 is CPU only"
    )

    scorer: Scorer = Field(
        "unmixlab",
        description="BSS Eval v4 by unmixlab (museval's numbers, faster) or museval itself",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        return value if value is None else check_device_spec(value)


class PromoteSettings(BaseModel):
    """Registering each target's model and moving its ``champion`` alias (the promote step's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="register the models and promote the best")
    metric: str = Field(
        "test_sdr_{target}", description="MLflow metric deciding the champion ({target} filled in)"
    )
    greater_is_better: bool | None = Field(
        None, description="higher metric values are better (default: inferred from the name)"
    )

    def metric_for(self, target: str) -> str:
        """The metric name for one target."""
        return self.metric.format(target=target)
