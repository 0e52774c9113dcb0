"""The verdict rules of the analysis plan, on plain fits and tests (no configurations).

Each rule returns ``supported``, ``contradicted`` or ``inconclusive``; a non-significant
difference is never a verdict. ``tests/test_study_simulation.py`` runs them on thousands of
simulated studies: under each test's null they decide wrongly in at most alpha of them, and
with the effect the power analysis names they detect it in at least the planned power.
"""

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats as scipy_stats

from unmixlab.study.statistics import Coefficient, Fit, Interval, NonInferiority, holm, vertex

Outcome = Literal["supported", "contradicted", "inconclusive"]
OUTCOMES: tuple[Outcome, ...] = ("supported", "contradicted", "inconclusive")

# the terms of H1's one model over the design's runs
BATCH, HIDDEN, SAMPLES = "log2 batch", "log2 hidden", "log2 samples per track"
HIDDEN_SQUARED = "log2 hidden²"


def h1_loss(fit: Fit, alpha: float) -> tuple[Outcome, list[float]]:
    """H1, quality: do larger batch and hidden sizes raise test SDR (lower the loss)?

    Supported when both slopes (SDR per doubling) are positive with Holm-adjusted p < alpha;
    contradicted when either is negative with Holm-adjusted p < alpha.

    Returns:
        The outcome and the Holm-adjusted p-values of the batch and hidden slopes.
    """
    slopes = [fit.coefficients[BATCH], fit.coefficients[HIDDEN]]
    adjusted = holm([c.p for c in slopes], alpha)
    significant = [q < alpha for q in adjusted]
    if any(s and c.estimate < 0 for s, c in zip(significant, slopes, strict=True)):
        return "contradicted", adjusted
    if all(s and c.estimate > 0 for s, c in zip(significant, slopes, strict=True)):
        return "supported", adjusted
    return "inconclusive", adjusted


def departure_p(coefficient: Coefficient, margin: float) -> float:
    """One-sided p of H0 ``|slope| <= margin`` (the slope departs from 0 by more than it)."""
    t = (abs(coefficient.estimate) - margin) / coefficient.se
    return float(scipy_stats.t.sf(t, coefficient.df))


def equivalence_p(coefficient: Coefficient, margin: float) -> float:
    """TOST p of H0 ``|slope| >= margin`` (the slope lies within the margin)."""
    lower = scipy_stats.t.sf((coefficient.estimate + margin) / coefficient.se, coefficient.df)
    upper = scipy_stats.t.cdf((coefficient.estimate - margin) / coefficient.se, coefficient.df)
    return float(max(lower, upper))


@dataclass(frozen=True)
class TimeDecision:
    """H1's time part.

    Attributes:
        outcome: the verdict.
        departure: Holm-adjusted p of each slope departing from the cost model beyond the margin.
        equivalence: TOST p of each slope lying within it.
    """

    outcome: Outcome
    departure: dict[str, float]
    equivalence: dict[str, float]


def h1_time(fit: Fit, cost_margin: float, alpha: float) -> TimeDecision:
    """H1, time: does the cost per training sample depart from the architecture's cost model?

    ``fit`` is log2(measured cost / cost model) on the design's log2 sizes: under the cost
    model every slope is 0. Supported when some slope departs from 0 by more than
    log2(``cost_margin``) per doubling (one-sided, Holm over the slopes); contradicted when
    every slope lies within it (TOST for each, an intersection-union test at alpha).
    """
    margin = math.log2(cost_margin)
    terms = [t for t in (BATCH, HIDDEN, SAMPLES) if t in fit.coefficients]
    adjusted = holm([departure_p(fit.coefficients[t], margin) for t in terms], alpha)
    departure = dict(zip(terms, adjusted, strict=True))
    equivalence = {t: equivalence_p(fit.coefficients[t], margin) for t in terms}
    if any(q < alpha for q in adjusted):
        outcome: Outcome = "supported"
    elif all(p < alpha for p in equivalence.values()):
        outcome = "contradicted"
    else:
        outcome = "inconclusive"
    return TimeDecision(outcome, departure, equivalence)


def h2(test: NonInferiority, missed_deadlines: int | None, alpha: float) -> Outcome:
    """H2: real time (no missed block deadline) without losing more than the margin of SDR.

    Supported when non-inferiority is shown (p < alpha) and a paced stream missed no deadline;
    contradicted when inferiority is shown (the SDR loss exceeds the margin, p < alpha) or a
    deadline was missed; inconclusive otherwise (and when the stream was not measured).
    """
    if test.p_inferior < alpha or (missed_deadlines or 0) > 0:
        return "contradicted"
    if test.p_noninferior < alpha and missed_deadlines == 0:
        return "supported"
    return "inconclusive"


def h3(fit: Fit, tested: tuple[float, float], alpha: float) -> tuple[Outcome, Interval]:
    """H3: does SDR peak at an interior hidden size (the loss fall, then rise)?

    Supported when the curvature in log2 hidden size is negative with p < alpha and the
    vertex's CI lies inside the tested range (log2 sizes); contradicted when the curvature
    is positive with p < alpha (a valley), or negative but its vertex's CI lies wholly
    outside the range (monotone over the tested sizes); inconclusive otherwise.

    Returns:
        The outcome and the vertex (log2 hidden size) with its CI.
    """
    curvature = fit.coefficients[HIDDEN_SQUARED]
    turn = vertex(fit, HIDDEN, HIDDEN_SQUARED, alpha)
    if curvature.p >= alpha:
        return "inconclusive", turn
    if curvature.estimate > 0:
        return "contradicted", turn
    low, high = tested
    if low <= turn.low and turn.high <= high:
        return "supported", turn
    if turn.high < low or turn.low > high:
        return "contradicted", turn
    return "inconclusive", turn
