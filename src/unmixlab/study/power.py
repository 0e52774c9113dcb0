"""The power analysis that chooses the number of seeds (statsmodels and the noncentral t).

For each hypothesis, the smallest effect its test detects with the planned power, given the
design (which configurations, how many seeds) and the assumed noise of the analysis plan.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats


def _se_df(terms: Mapping[str, Sequence[float]], term: str, sd: float) -> tuple[float, int]:
    """Standard error of ``term``'s OLS coefficient and the residual df of the design."""
    names = list(terms)
    n = len(next(iter(terms.values())))
    x = np.column_stack([np.ones(n), *(np.asarray(terms[k], float) for k in names)])
    if term not in names or np.linalg.matrix_rank(x) < x.shape[1]:
        return math.inf, 0  # not estimable by this design
    index = names.index(term) + 1
    return sd * math.sqrt(np.linalg.inv(x.T @ x)[index, index]), n - x.shape[1]


def _t_power(ncp: float, df: int, alpha: float) -> float:
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(ncp)  # the far tail (a significant result of the wrong sign) is negligible
    return float(np.nan_to_num(scipy_stats.nct.sf(critical, df, ncp), nan=1.0))


def coefficient_power(
    terms: Mapping[str, Sequence[float]], term: str, effect: float, sd: float, alpha: float
) -> float:
    """Power of the two-sided t-test of one OLS coefficient of size ``effect``.

    Args:
        terms: the design's predictors, one value per run.
        term: the tested one.
        effect: its true value.
        sd: the residual SD.
        alpha: the test's level.
    """
    se, df = _se_df(terms, term, sd)
    return 0.0 if df < 1 else _t_power(effect / se, df, alpha)


def detectable_coefficient(
    terms: Mapping[str, Sequence[float]], term: str, sd: float, alpha: float, power: float
) -> float:
    """The smallest coefficient the design detects with ``power`` (inf: no residual df)."""
    se, df = _se_df(terms, term, sd)
    if df < 1:
        return math.inf
    ncp = optimize.brentq(lambda n: _t_power(n, df, alpha) - power, 0.0, 40.0)
    return float(ncp * se)


def detectable_noninferiority(seeds: int, sd: float, alpha: float, power: float) -> float:
    """How far above ``-margin`` the true difference must lie to show non-inferiority.

    One-sided two-sample t-test with ``seeds`` runs a side (statsmodels ``TTestIndPower``),
    in the outcome's units.
    """
    from statsmodels.stats.power import TTestIndPower

    if seeds < 2:
        return math.inf
    d = TTestIndPower().solve_power(
        nobs1=seeds, ratio=1.0, alpha=alpha, power=power, alternative="larger"
    )
    return float(d) * sd


@dataclass(frozen=True)
class PowerAnalysis:
    """The smallest effects the study detects with the planned power, per hypothesis.

    Attributes:
        seeds: seeds per configuration.
        power: the planned power.
        h1_slope_db: SDR change per doubling of batch or hidden size (Bonferroni over the two).
        h1_cost_factor: cost-model departure per doubling (a factor) detected beyond the margin.
        h2_difference_db: the true SDR difference above ``-margin`` that non-inferiority needs.
        h3_curvature_db: curvature of SDR in log2 hidden size.
        seeds_needed: the seeds at which the H1 and H2 targets of the plan are met.
    """

    seeds: int
    power: float
    h1_slope_db: float
    h1_cost_factor: float
    h2_difference_db: float
    h3_curvature_db: float
    seeds_needed: int

    def lines(self, margin_db: float, cost_margin: float) -> list[str]:
        """One readable line per hypothesis."""
        pct = f"{self.power:.0%}"
        return [
            f"H1 quality: an SDR change of {_db(self.h1_slope_db)} per doubling of batch or "
            f"hidden size is detected with {pct} power.",
            f"H1 time: a departure from the cost model of ×{self.h1_cost_factor:.3g} per "
            f"doubling (the margin is ×{cost_margin:g}) is detected with {pct} power.",
            f"H2: non-inferiority (margin {margin_db:g} dB) is shown with {pct} power when the "
            "true SDR difference (unidirectional − bidirectional) is at least "
            f"{self.h2_difference_db - margin_db:+.2g} dB.",
            f"H3: a curvature of {_db(self.h3_curvature_db)} per squared doubling of hidden "
            f"size is detected with {pct} power.",
        ]


def _db(value: float) -> str:
    return "— (no residual spread)" if not math.isfinite(value) else f"{value:.2g} dB"


def h3_terms(h1_terms: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """H1's terms plus the centred square of log2 hidden (H3's quadratic)."""
    from unmixlab.study.rules import HIDDEN, HIDDEN_SQUARED

    hidden = np.asarray(h1_terms[HIDDEN], float)
    centred = hidden - hidden.mean()
    terms = {k: list(v) for k, v in h1_terms.items() if k != HIDDEN}
    return {**terms, HIDDEN: list(centred), HIDDEN_SQUARED: list(centred**2)}


def analyse_power(
    design: Sequence[Mapping[str, float]],
    seeds: int,
    *,
    alpha: float,
    power: float,
    seed_sd_db: float,
    cost_sd: float,
    sdr_slope_db: float,
    sdr_margin_db: float,
    cost_margin: float,
) -> PowerAnalysis:
    """The power analysis of a design: one mapping of H1 terms per configuration.

    Args:
        design: the design configurations' log2 batch, hidden and samples per track.
        seeds: seeds per configuration.
        alpha: the tests' level.
        power: the planned power.
        seed_sd_db: assumed SD of test SDR between seeds.
        cost_sd: assumed SD of log2 cost per sample between configurations.
        sdr_slope_db: the H1 slope the plan wants detected.
        sdr_margin_db: the H2 margin (the plan wants a lossless model shown non-inferior).
        cost_margin: the H1 time margin (a factor per doubling).
    """
    from unmixlab.study.design import varying
    from unmixlab.study.rules import BATCH, HIDDEN, HIDDEN_SQUARED

    terms = varying(design)

    def runs(n: int) -> dict[str, list[float]]:
        return {k: [c[k] for c in design for _ in range(n)] for k in terms}

    def slope(n: int) -> float:
        return max(
            detectable_coefficient(runs(n), term, seed_sd_db, alpha / 2, power)
            for term in (BATCH, HIDDEN)
        )

    once = runs(1)
    cost = max(
        (detectable_coefficient(once, t, cost_sd, alpha / len(once), power) for t in once),
        default=math.inf,
    )
    needed = next(
        (
            n
            for n in range(2, 51)
            if slope(n) <= sdr_slope_db
            and detectable_noninferiority(n, seed_sd_db, alpha, power) <= sdr_margin_db
        ),
        51,
    )
    return PowerAnalysis(
        seeds=seeds,
        power=power,
        h1_slope_db=slope(seeds),
        h1_cost_factor=cost_margin * 2**cost,
        h2_difference_db=detectable_noninferiority(seeds, seed_sd_db, alpha, power),
        h3_curvature_db=detectable_coefficient(
            h3_terms(runs(seeds)), HIDDEN_SQUARED, seed_sd_db, alpha, power
        )
        if len({c[HIDDEN] for c in design}) >= 3
        else math.inf,
        seeds_needed=needed,
    )
