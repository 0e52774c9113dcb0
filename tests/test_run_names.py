"""Run names tell runs apart: no two runs with different settings share a name.

Names are made as the flows make them (:func:`unmixlab.experiment.run_name`) for the shipped
quickstart, tuning and study presets, with and without overrides.
"""

from pathlib import Path

import pytest

from unmixlab.config import TrainConfig
from unmixlab.experiment import load_preset, run_name
from unmixlab.study.settings import plan
from unmixlab.tracking.names import UNNAMED, training_run_name, trial_run_name

OVERRIDES = ([], ["train.epochs=8"], ["train.hidden_size=128"], ["train.epochs=8", "train.seed=1"])


def settings(config: TrainConfig) -> tuple:
    """What a run learns: its flat settings but where it writes and what it runs on."""
    return tuple(sorted((k, str(v)) for k, v in config.flat().items() if k not in UNNAMED))


def assert_apart(named: list[tuple[str, tuple]]) -> None:
    """Runs of different settings have different names."""
    by_name: dict[str, tuple] = {}
    for name, learned in named:
        assert by_name.setdefault(name, learned) == learned, f"'{name}' names two settings"


@pytest.mark.parametrize("preset", ["quickstart", "tune-quickstart", "umx"])
def test_overrides_make_distinct_names_and_come_first(preset: str) -> None:
    named = []
    required = ["data.root=/data/musdb18"] if preset == "umx" else []
    for overrides in OVERRIDES:
        overrides = [*required, *overrides]
        config = load_preset(preset, overrides)
        for target in config.targets:
            train = config.train_config(target, Path("model"))
            named.append((run_name(preset, overrides, train), settings(train)))
    assert_apart(named)
    assert len({name for name, _ in named}) == len(named)
    epochs = [*required, "train.epochs=8"]
    train = load_preset(preset, epochs).train_config("vocals", Path("model"))
    assert run_name(preset, epochs, train).startswith("epochs 8 · ")  # what differs, first


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed-study", "seed-study-quick", "seed-study-16k"])
def test_every_study_run_has_its_own_name(preset: str) -> None:
    config = load_preset(preset)
    runs = plan(config, Path("models"))
    named = [
        (run_name(preset, [], run.config, first=run.configuration.name), settings(run.config))
        for run in runs
    ]
    assert_apart(named)
    assert len({name for name, _ in named}) == len(runs)
    for (name, _), run in zip(named, runs, strict=True):
        assert name.startswith(run.configuration.name + " · ")


def test_trials_and_plain_trainings_are_named_by_what_they_are() -> None:
    params = {"hidden_size": 64, "batch_size": 16, "lr": 1e-3}
    assert trial_run_name(3, params) == "trial 3 · h64 b16 lr 1.0e-03"
    a = TrainConfig(output=Path("models/run1"), sample_rate=16000, hidden_size=128)
    b = a.updated(output=Path("models/causal"), unidirectional=True)
    names = [training_run_name(c.flat(), first=c.run.output.name) for c in (a, b)]
    assert names == [
        "run1 · vocals · h128 b16 · seed 42",
        "causal · vocals · h128 b16 uni · seed 42",
    ]
