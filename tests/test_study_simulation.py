"""The verdict rules on simulated studies: wrong in at most alpha, powered as the plan says.

Each test simulates 1000 studies of the CPU-sized preset's design (its configurations, its
seeds) under the null of one rule, or with the effect its power analysis names, and runs the
rule exactly as the report does. "No effect" is the null of each test: no slope (H1 quality,
H3), the cost model holding exactly (H1 time: it must not call a departure), an SDR loss
exactly at the margin (H2: it must not call non-inferiority).
"""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from unmixlab.experiment import load_preset
from unmixlab.study import rules
from unmixlab.study.conduct import power_of
from unmixlab.study.design import design_points
from unmixlab.study.power import h3_terms
from unmixlab.study.statistics import Coefficient, Fit, holm, noninferiority, ols

STUDIES = 1000
PRESET = "seed-study-cpu"


def tolerance(rate: float) -> float:
    """``rate`` plus two Monte-Carlo standard errors over :data:`STUDIES` studies."""
    return rate + 2 * math.sqrt(rate * (1 - rate) / STUDIES)


@pytest.fixture(scope="module")
def study():
    config = load_preset(PRESET)
    points = design_points(config)
    plan = config.study.analysis
    seeds = config.study.seeds
    power = power_of(config)  # the analysis the preset's report prints
    runs = {k: np.array([p[k] for p in points for _ in range(seeds)]) for k in points[0]}
    once = {k: np.array([p[k] for p in points]) for k in points[0]}
    return config, plan, power, runs, once


def simulate(terms, coefficients, sd, rng):
    """:data:`STUDIES` simulated outcomes per run: the linear predictor plus Gaussian noise.

    Returns:
        ``(studies, runs)``.
    """
    n = len(next(iter(terms.values())))
    mean = sum(coefficients.get(k, 0.0) * np.asarray(v) for k, v in terms.items())
    return mean + rng.normal(0.0, sd, (STUDIES, n))


def fits(y: np.ndarray, terms, alpha: float = 0.05) -> list[Fit]:
    """:func:`ols` of every row of ``y`` at once (one design, many outcomes), in numpy.

    ``test_the_vectorised_fit_is_statsmodels_ols`` checks it against the report's fit.
    """
    names = ["const", *terms]
    x = np.column_stack([np.ones(y.shape[1]), *(np.asarray(v, float) for v in terms.values())])
    inverse = np.linalg.inv(x.T @ x)
    beta = y @ x @ inverse  # (studies, coefficients)
    df = y.shape[1] - x.shape[1]
    scale = ((y - beta @ x.T) ** 2).sum(1) / df
    se = np.sqrt(scale[:, None] * np.diag(inverse)[None, :])
    p = 2 * scipy_stats.t.sf(np.abs(beta / se), df)
    half = scipy_stats.t.ppf(1 - alpha / 2, df) * se
    found = []
    for i in range(y.shape[0]):
        coefficients = {
            name: Coefficient(
                name,
                beta[i, j],
                beta[i, j] - half[i, j],
                beta[i, j] + half[i, j],
                se[i, j],
                p[i, j],
                df,
            )  # fmt: skip
            for j, name in enumerate(names)
        }
        covariance = {
            (a, b): scale[i] * inverse[j, k]
            for j, a in enumerate(names)
            for k, b in enumerate(names)
        }
        found.append(Fit(coefficients, math.sqrt(scale[i]), y.shape[1], covariance))
    return found


def rates(outcomes: list[str]) -> dict[str, float]:
    return {o: outcomes.count(o) / len(outcomes) for o in rules.OUTCOMES}


def test_the_cpu_preset_has_the_seeds_its_power_analysis_asks_for(study):
    config, plan, power, runs, _ = study
    assert power.seeds >= power.seeds_needed, power
    assert power.h1_slope_db <= plan.sdr_slope_db
    assert power.h2_difference_db <= plan.sdr_margin_db


def test_h1_quality_without_an_effect_decides_in_at_most_alpha(study):
    _, plan, _, runs, _ = study
    rng = np.random.default_rng(1)
    outcomes = [
        rules.h1_loss(fit, plan.alpha)[0]
        for fit in fits(simulate(runs, {}, plan.seed_sd_db, rng), runs)
    ]
    found = rates(outcomes)
    assert found["supported"] + found["contradicted"] <= tolerance(plan.alpha), found


def test_h1_quality_detects_the_slope_its_power_analysis_names(study):
    _, plan, power, runs, _ = study
    rng = np.random.default_rng(2)
    effect = {rules.BATCH: power.h1_slope_db, rules.HIDDEN: power.h1_slope_db}
    detected = {rules.BATCH: 0, rules.HIDDEN: 0}
    for fit in fits(simulate(runs, effect, plan.seed_sd_db, rng), runs):
        _, adjusted = rules.h1_loss(fit, plan.alpha)
        for term, q in zip((rules.BATCH, rules.HIDDEN), adjusted, strict=True):
            detected[term] += q < plan.alpha and fit.coefficients[term].estimate > 0
    assert min(detected.values()) / STUDIES >= plan.power - 0.03, detected


def test_h1_time_never_calls_the_cost_model_wrong_when_it_holds(study):
    _, plan, _, _, once = study
    rng = np.random.default_rng(3)
    outcomes = [
        rules.h1_time(fit, plan.cost_margin, plan.alpha).outcome
        for fit in fits(simulate(once, {}, plan.cost_sd, rng), once)
    ]
    assert rates(outcomes)["supported"] <= tolerance(plan.alpha)


def test_h1_time_at_the_margin_never_calls_the_cost_model_right(study):
    _, plan, _, _, once = study
    rng = np.random.default_rng(4)
    at_margin = {rules.BATCH: math.log2(plan.cost_margin)}
    outcomes = [
        rules.h1_time(fit, plan.cost_margin, plan.alpha).outcome
        for fit in fits(simulate(once, at_margin, plan.cost_sd, rng), once)
    ]
    found = rates(outcomes)
    assert found["contradicted"] <= tolerance(plan.alpha), found


def test_h1_time_detects_the_departure_its_power_analysis_names(study):
    _, plan, power, _, once = study
    rng = np.random.default_rng(5)
    departure = {rules.BATCH: math.log2(power.h1_cost_factor)}
    outcomes = [
        rules.h1_time(fit, plan.cost_margin, plan.alpha).outcome
        for fit in fits(simulate(once, departure, plan.cost_sd, rng), once)
    ]
    assert rates(outcomes)["supported"] >= plan.power - 0.03


def h2_outcomes(plan, seeds, difference, rng):
    outcomes = []
    for _ in range(STUDIES):
        control = rng.normal(0.0, plan.seed_sd_db, seeds)
        treatment = rng.normal(difference, plan.seed_sd_db, seeds)
        test = noninferiority(treatment, control, plan.sdr_margin_db, plan.alpha)
        outcomes.append(rules.h2(test, 0, plan.alpha))
    return rates(outcomes)


def test_the_vectorised_fit_is_statsmodels_ols(study):
    _, plan, _, runs, _ = study
    y = simulate(runs, {rules.BATCH: 0.3}, plan.seed_sd_db, np.random.default_rng(0))[:3]
    for row, fast in zip(y, fits(y, runs), strict=True):
        slow = ols(row, runs)
        for name, c in slow.coefficients.items():
            f = fast.coefficients[name]
            assert (f.estimate, f.low, f.high, f.p) == pytest.approx(
                (c.estimate, c.low, c.high, c.p)
            )
        assert fast.residual_sd == pytest.approx(slow.residual_sd)


@pytest.mark.slow
def test_holm_is_statsmodels_multipletests():
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 7):
        p = rng.uniform(0, 0.2, size)
        assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_h2_at_the_margin_calls_non_inferiority_in_at_most_alpha(study):
    config, plan, _, _, _ = study
    found = h2_outcomes(plan, config.study.seeds, -plan.sdr_margin_db, np.random.default_rng(6))
    assert found["supported"] <= tolerance(plan.alpha), found
    assert found["contradicted"] <= tolerance(plan.alpha), found


def test_h2_shows_non_inferiority_with_the_planned_power(study):
    config, plan, power, _, _ = study
    difference = -plan.sdr_margin_db + power.h2_difference_db
    found = h2_outcomes(plan, config.study.seeds, difference, np.random.default_rng(7))
    assert found["supported"] >= plan.power - 0.03, found


def test_h2_is_never_supported_with_a_missed_deadline(study):
    _, plan, _, _, _ = study
    test = noninferiority([1.0, 1.1, 0.9], [1.0, 1.05, 0.95], plan.sdr_margin_db, plan.alpha)
    assert rules.h2(test, 0, plan.alpha) == "supported"
    assert rules.h2(test, 1, plan.alpha) == "contradicted"
    assert rules.h2(test, None, plan.alpha) == "inconclusive"


def test_h3_without_a_curve_decides_in_at_most_alpha(study):
    _, plan, _, runs, _ = study
    terms = h3_terms(runs)
    hidden = runs[rules.HIDDEN] - runs[rules.HIDDEN].mean()
    tested = (hidden.min(), hidden.max())
    rng = np.random.default_rng(8)
    slope = {rules.HIDDEN: plan.sdr_slope_db}  # a monotone effect is no turning point
    outcomes = [
        rules.h3(fit, tested, plan.alpha)[0]
        for fit in fits(simulate(terms, slope, plan.seed_sd_db, rng), terms)
    ]
    found = rates(outcomes)
    assert found["supported"] + found["contradicted"] <= tolerance(plan.alpha), found


def test_h3_detects_the_curvature_its_power_analysis_names(study):
    _, plan, power, runs, _ = study
    terms = h3_terms(runs)
    rng = np.random.default_rng(9)
    curve = {rules.HIDDEN_SQUARED: -power.h3_curvature_db}
    detected = 0
    for fit in fits(simulate(terms, curve, plan.seed_sd_db, rng), terms):
        c = fit.coefficients[rules.HIDDEN_SQUARED]
        detected += c.p < plan.alpha and c.estimate < 0
    assert detected / STUDIES >= plan.power - 0.03
