"""The study's statistics, from statsmodels: OLS with CIs, non-inferiority, pairwise tests.

Every function takes plain arrays (one value per run), so the verdict rules can be run on
simulated studies (``tests/test_study_simulation.py``) exactly as on measured ones.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class Coefficient:
    """One coefficient of a linear model.

    Attributes:
        name: the term, e.g. ``log2 batch``.
        estimate: the estimate.
        low: lower end of its two-sided ``1 - alpha`` confidence interval.
        high: upper end.
        se: its standard error.
        p: two-sided p-value against 0.
        df: residual degrees of freedom.
    """

    name: str
    estimate: float
    low: float
    high: float
    se: float
    p: float
    df: float


@dataclass(frozen=True)
class Fit:
    """An OLS fit: its coefficients by term, the residual SD, the runs and the covariance.

    Attributes:
        coefficients: by term (``const`` included).
        residual_sd: the residual standard deviation.
        nobs: number of observations.
        covariance: the coefficients' covariance, by pairs of terms.
    """

    coefficients: dict[str, Coefficient]
    residual_sd: float
    nobs: int
    covariance: dict[tuple[str, str], float]


def ols(y: Sequence[float], terms: Mapping[str, Sequence[float]], alpha: float = 0.05) -> Fit:
    """Fit ``y ~ const + terms`` by ordinary least squares (statsmodels).

    Args:
        y: outcome, one value per run.
        terms: predictors by name, each one value per run.
        alpha: 1 - the confidence level of the intervals.

    Raises:
        ValueError: fewer runs than coefficients + 1 (no residual degree of freedom).
    """
    import statsmodels.api as sm

    names = ["const", *terms]
    x = np.column_stack([np.ones(len(y)), *(np.asarray(v, float) for v in terms.values())])
    if len(y) <= x.shape[1]:
        raise ValueError(f"{len(y)} runs cannot fit {x.shape[1]} coefficients with a spread")
    result = sm.OLS(np.asarray(y, float), x).fit()
    intervals = result.conf_int(alpha)
    cov = result.cov_params()
    coefficients = {
        name: Coefficient(
            name,
            float(result.params[i]),
            float(intervals[i][0]),
            float(intervals[i][1]),
            float(result.bse[i]),
            float(result.pvalues[i]),
            float(result.df_resid),
        )
        for i, name in enumerate(names)
    }
    covariance = {
        (a, b): float(cov[i][j]) for i, a in enumerate(names) for j, b in enumerate(names)
    }
    return Fit(coefficients, float(np.sqrt(result.scale)), len(y), covariance)


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval.

    Attributes:
        estimate: the estimate.
        low: lower end.
        high: upper end.
    """

    estimate: float
    low: float
    high: float


def vertex(fit: Fit, linear: str, quadratic: str, alpha: float = 0.05) -> Interval:
    """Where ``b1 x + b2 x^2`` turns (``-b1 / 2 b2``), with a delta-method CI.

    The gradient of ``-b1 / (2 b2)`` is ``(-1 / (2 b2), b1 / (2 b2^2))``.
    """
    b1 = fit.coefficients[linear].estimate
    b2 = fit.coefficients[quadratic].estimate
    if b2 == 0:
        return Interval(math.nan, -math.inf, math.inf)
    estimate = -b1 / (2 * b2)
    g1, g2 = -1 / (2 * b2), b1 / (2 * b2**2)
    c = fit.covariance
    variance = (
        g1 * g1 * c[linear, linear]
        + 2 * g1 * g2 * c[linear, quadratic]
        + g2 * g2 * c[quadratic, quadratic]
    )
    df = fit.coefficients[linear].df
    half = scipy_stats.t.ppf(1 - alpha / 2, df) * math.sqrt(max(variance, 0.0))
    return Interval(estimate, estimate - half, estimate + half)


@dataclass(frozen=True)
class NonInferiority:
    """A non-inferiority test of ``treatment - control`` against ``-margin`` (Welch).

    Attributes:
        difference: mean of treatment minus mean of control.
        low: lower end of its two-sided ``1 - 2 alpha`` CI (the one-sided ``1 - alpha`` bound).
        high: upper end.
        p_noninferior: one-sided p of H0 ``difference <= -margin``.
        p_inferior: one-sided p of H0 ``difference >= -margin``.
        margin: the margin.
    """

    difference: float
    low: float
    high: float
    p_noninferior: float
    p_inferior: float
    margin: float


def noninferiority(
    treatment: Sequence[float], control: Sequence[float], margin: float, alpha: float = 0.05
) -> NonInferiority:
    """Test that ``treatment`` is no worse than ``control`` by more than ``margin``.

    The two one-sided Welch tests of :func:`statsmodels.stats.weightstats.ttest_ind` against
    ``-margin``, and the ``1 - 2 alpha`` interval whose lower end is the one-sided bound.
    """
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

    t, c = np.asarray(treatment, float), np.asarray(control, float)
    _, p_ni, _ = ttest_ind(t, c, alternative="larger", usevar="unequal", value=-margin)
    _, p_inf, _ = ttest_ind(t, c, alternative="smaller", usevar="unequal", value=-margin)
    low, high = CompareMeans(DescrStatsW(t), DescrStatsW(c)).tconfint_diff(
        alpha=2 * alpha, usevar="unequal"
    )
    return NonInferiority(
        float(t.mean() - c.mean()), float(low), float(high), float(p_ni), float(p_inf), margin
    )


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values: ``max_{j<=i} min(1, (m - j) p_(j))`` in ascending order.

    The same numbers as statsmodels' ``multipletests(method="holm")`` (a test checks it),
    which runs ``gc.collect()`` on every call (a tenth of a second): too slow for the
    thousands of simulated studies that test the verdict rules. ``alpha`` is unused (kept to
    match that signature).
    """
    p = np.asarray(pvalues, float)
    if not p.size:
        return []
    order = np.argsort(p)
    scaled = np.minimum(1.0, (p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


@dataclass(frozen=True)
class Pair:
    """Welch's test of one configuration against another.

    Attributes:
        a: first configuration.
        b: second configuration.
        difference: mean of b minus mean of a.
        low: lower end of the 95 % CI of the difference.
        high: upper end.
        hedges_g: the standardised difference (pooled SD, small-sample corrected).
        p: two-sided p-value.
        p_holm: Holm-adjusted over the table's family.
        n_a: runs of a.
        n_b: runs of b.
    """

    a: str
    b: str
    difference: float
    low: float
    high: float
    hedges_g: float
    p: float
    p_holm: float
    n_a: int
    n_b: int


def pairwise(
    groups: Mapping[str, Sequence[float]], pairs: Sequence[tuple[str, str]], alpha: float = 0.05
) -> list[Pair]:
    """Welch's t-test of each pair, Holm-adjusted over all of them; pairs under 2 runs skipped."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    rows = []
    for a, b in pairs:
        xa, xb = np.asarray(groups[a], float), np.asarray(groups[b], float)
        if len(xa) < 2 or len(xb) < 2:
            continue
        compare = CompareMeans(DescrStatsW(xb), DescrStatsW(xa))
        _, p, _ = compare.ttest_ind(usevar="unequal")
        low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
        rows.append((a, b, float(xb.mean() - xa.mean()), low, high, hedges_g(xa, xb), p))
    adjusted = holm([row[-1] for row in rows], alpha)
    return [
        Pair(a, b, d, float(lo), float(hi), g, float(p), q, len(groups[a]), len(groups[b]))
        for (a, b, d, lo, hi, g, p), q in zip(rows, adjusted, strict=True)
    ]


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g of ``b`` against ``a`` (pooled SD, small-sample corrected; nan: no spread)."""
    na, nb = len(a), len(b)
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return math.nan
    correction = 1 - 3 / (4 * (na + nb) - 9)
    return float((b.mean() - a.mean()) / pooled * correction)


def format_p(p: float) -> str:
    """``p = 0.012`` (two significant digits); tiny ones as ``p < 0.0001``."""
    if p < 1e-4:
        return "p < 0.0001"
    return f"p = {p:.2g}"
