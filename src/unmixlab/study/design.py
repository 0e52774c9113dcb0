"""Which runs answer which hypothesis: the design's configurations and their H1 terms.

The design is the ``budget`` configurations (equal training samples) with a bidirectional
LSTM at the preset's STFT; H1 fits one model over their runs, H3 a quadratic in hidden size.
"""

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from unmixlab.study.rules import BATCH, HIDDEN, SAMPLES
from unmixlab.study.settings import Configuration, expand

if TYPE_CHECKING:
    from unmixlab.experiment import ExperimentConfig


def terms_of(variables: Mapping[str, int | bool]) -> dict[str, float]:
    """H1's terms of one configuration: log2 batch, hidden and samples per track."""
    return {
        BATCH: math.log2(variables["batch_size"]),
        HIDDEN: math.log2(variables["hidden_size"]),
        SAMPLES: math.log2(variables["samples_per_track"]),
    }


def resolved(experiment: "ExperimentConfig", configuration: Configuration) -> dict:
    """A configuration's independent variables, the preset's where it sets none."""
    flat = experiment.train.updated(**configuration.overrides()).flat()
    return {k: flat[k] for k in ("batch_size", "hidden_size", "samples_per_track", *STFT_KEYS)} | {
        "unidirectional": flat["unidirectional"]
    }


STFT_KEYS = ("nfft", "nhop")


def in_design(
    configuration: Configuration, variables: Mapping[str, int | bool], stft: tuple[int, int]
) -> bool:
    """A budget configuration, bidirectional, at the preset's STFT."""
    return (
        configuration.protocol == "budget"
        and not variables["unidirectional"]
        and (variables["nfft"], variables["nhop"]) == stft
    )


def design_points(experiment: "ExperimentConfig") -> list[dict[str, float]]:
    """The H1 terms of each design configuration of ``experiment``'s study."""
    stft = (experiment.train.model.nfft, experiment.train.model.nhop)
    points = []
    for configuration in expand(experiment.study):
        variables = resolved(experiment, configuration)
        if in_design(configuration, variables, stft):
            points.append(terms_of(variables))
    return points


def varying(points: Sequence[Mapping[str, float]]) -> list[str]:
    """The terms that take more than one value over ``points`` (the estimable slopes)."""
    return [k for k in (BATCH, HIDDEN, SAMPLES) if len({p[k] for p in points}) > 1]
