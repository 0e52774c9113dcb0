"""How the study flow runs its design: run order, timing pass, budgets, data and power.

The flow (``pipelines/study.py``) calls these between its steps; they know nothing of
Prefect or MLflow.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from unmixlab.model import parameter_count
from unmixlab.study.design import design_points
from unmixlab.study.measurements import CostMeasurement
from unmixlab.study.power import PowerAnalysis, analyse_power
from unmixlab.study.settings import PlannedRun, interleave

if TYPE_CHECKING:
    from unmixlab.experiment import ExperimentConfig
    from unmixlab.prepare import PreparedData


def first_of_each(planned: Sequence[PlannedRun]) -> list[PlannedRun]:
    """One run per configuration (its first seed), in plan order."""
    seen: dict[str, PlannedRun] = {}
    for run in planned:
        seen.setdefault(run.configuration.name, run)
    return list(seen.values())


def timing_pass(
    planned: Sequence[PlannedRun], repeats: int, warmup: int, seed: int
) -> dict[str, CostMeasurement]:
    """The cost per training sample of every configuration, in a seeded random order."""
    from unmixlab.study.timing import cost_per_sample

    runs = interleave(first_of_each(planned), seed + 1)
    found = {r.configuration.name: cost_per_sample(r.configuration.name, r.config, repeats, warmup)
             for r in runs}  # fmt: skip
    return {r.configuration.name: found[r.configuration.name] for r in first_of_each(planned)}


def parameters(planned: Sequence[PlannedRun]) -> dict[str, int]:
    """The parameter count of every configuration's model."""
    return {
        r.configuration.name: parameter_count(r.config.architecture())
        for r in first_of_each(planned)
    }


def budgets(planned: Sequence[PlannedRun], train_tracks: int) -> dict[str, tuple[int, int, int]]:
    """Every configuration's (epochs, optimiser steps, training samples)."""
    found = {}
    for r in first_of_each(planned):
        b = r.budget(train_tracks)
        found[r.configuration.name] = (b.epochs, b.steps, b.samples)
    return found


def power_of(experiment: "ExperimentConfig") -> PowerAnalysis | None:
    """The power analysis of the preset's design at its seed count (None: no design)."""
    points = design_points(experiment)
    if len(points) < 2:
        return None
    plan = experiment.study.analysis
    return analyse_power(
        points,
        experiment.study.seeds,
        alpha=plan.alpha,
        power=plan.power,
        seed_sd_db=plan.seed_sd_db,
        cost_sd=plan.cost_sd,
        sdr_slope_db=plan.sdr_slope_db,
        sdr_margin_db=plan.sdr_margin_db,
        cost_margin=plan.cost_margin,
    )


def describe_data(
    experiment: "ExperimentConfig", prepared: "PreparedData"
) -> tuple[tuple[str, str], ...]:
    """What the data are: synthetic or not, the generator and its seed, the splits."""
    from unmixlab.data.tracks import discover

    synth = experiment.data.synth
    if synth is not None:
        kind = (
            f"synthetic: made by unmixlab.synth (`unmixlab data synth`, seed {synth.seed}), "
            f"{synth.tracks} training and {synth.test_tracks or synth.tracks // 4} test songs of "
            f"{synth.seconds:g} s at {synth.sample_rate} Hz; not MUSDB18"
        )
    else:
        kind = f"a MUSDB-format folder ({'wav' if experiment.data.is_wav else 'stems'})"
    test = discover(experiment.data.root, experiment.data.is_wav, "test")
    plan = experiment.study.analysis

    def split(tracks: Sequence, need: int = 0) -> str:
        minutes = sum(t.duration for t in tracks) / 60
        short = f" (below the plan's {need})" if len(tracks) < need else ""
        return f"{len(tracks)} tracks, {minutes:.1f} min{short}"

    return (
        ("data", kind),
        ("root", str(experiment.data.root)),
        ("training tracks", split(prepared.train)),
        ("validation tracks", split(prepared.valid, plan.min_valid_tracks)),
        ("test tracks", split(test, plan.min_test_tracks)),
        ("sample rate", f"{experiment.train.data.sample_rate} Hz"),
    )
