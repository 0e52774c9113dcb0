"""The search space as Optuna suggestions, and the trial's training configuration."""

from pathlib import Path

import optuna

from unmixlab.config import TrainConfig
from unmixlab.tuning.settings import Dimension, FloatRange


def suggest(trial: optuna.Trial, space: dict[str, Dimension]) -> dict[str, object]:
    """Ask ``trial`` for one value per dimension (enqueued trials get their fixed values).

    Returns:
        TrainConfig field -> value.
    """
    params: dict[str, object] = {}
    for name, dimension in space.items():
        if isinstance(dimension, FloatRange):
            params[name] = trial.suggest_float(
                name, dimension.low, dimension.high, log=dimension.log
            )
        else:
            params[name] = trial.suggest_categorical(name, list(dimension))
    return params


def trial_config(
    base: TrainConfig, params: dict[str, object], output: Path, epochs: int | None
) -> TrainConfig:
    """``base`` with the trial's hyperparameters, its own model folder and epoch budget.

    The data settings (root, sample rate, channels, cache folder) stay those of ``base``,
    so every trial reads the cache that the study prepared once.

    Raises:
        pydantic.ValidationError: the combination is invalid (the trial fails with it).
    """
    return base.updated(**params, output=output, epochs=epochs or base.run.epochs)
