"""Significance tests of the study's differences: Welch's t-test over seeds (scipy).

One function decides (:func:`direction`), another writes the words (:func:`describe_test`),
so every verdict states its p-value and its number of seeds the same way.
"""

import math
from dataclasses import dataclass

from unmixlab.study.results import Stat


@dataclass(frozen=True)
class TestResult:
    """Welch's t-test of ``b`` against ``a`` (or a one-sample test of ``b`` against a value).

    Attributes:
        change: mean of ``b`` minus mean of ``a`` (or minus the value).
        t: the t statistic.
        p: the two-sided p-value.
        n_a: seeds behind ``a`` (0 for a one-sample test).
        n_b: seeds behind ``b``.
    """

    change: float
    t: float
    p: float
    n_a: int
    n_b: int

    @property
    def seeds(self) -> str:
        """``3 + 3 seeds`` (``3 seeds`` for a one-sample test)."""
        if self.n_a:
            return f"{self.n_a} + {self.n_b} seeds"
        return f"{self.n_b} seed{'s' * (self.n_b != 1)}"


def welch(a: Stat, b: Stat) -> TestResult | None:
    """Welch's unequal-variance t-test of ``b`` against ``a``; None below two seeds each."""
    if a.n < 2 or b.n < 2:
        return None
    change = b.mean - a.mean
    if a.sd == 0 and b.sd == 0:  # no spread at all: any change is certain, none is not
        return TestResult(change, math.copysign(math.inf, change), float(change == 0), a.n, b.n)
    from scipy import stats as scipy_stats  # on use: loading a preset needs no scipy

    t, p = scipy_stats.ttest_ind_from_stats(b.mean, b.sd, b.n, a.mean, a.sd, a.n, equal_var=False)
    return TestResult(change, float(t), float(p), a.n, b.n)


def one_sample(b: Stat, value: float) -> TestResult | None:
    """Student's t-test of ``b``'s mean against ``value``; None below two seeds."""
    if b.n < 2:
        return None
    change = b.mean - value
    if b.sd == 0:
        return TestResult(change, math.copysign(math.inf, change), float(change == 0), 0, b.n)
    t = change / b.standard_error
    from scipy import stats as scipy_stats

    p = 2 * scipy_stats.t.sf(abs(t), df=b.n - 1)
    return TestResult(change, float(t), float(p), 0, b.n)


def direction(test: TestResult | None, alpha: float) -> int | None:
    """+1 (higher) or -1 (lower) when ``test`` is significant at ``alpha``, else 0.

    None when there is no test (fewer than two seeds): no spread, nothing decided.
    """
    if test is None:
        return None
    if test.p >= alpha:
        return 0
    return 1 if test.change > 0 else -1


def describe_test(test: TestResult | None) -> str:
    """``p = 0.012, Welch's t-test over 3 + 3 seeds`` (or why there is none)."""
    if test is None:
        return "one seed: no spread, no test"
    kind = "Welch's t-test" if test.n_a else "t-test"
    return f"{format_p(test.p)}, {kind} over {test.seeds}"


def format_p(p: float) -> str:
    """``p = 0.012`` (two significant digits); tiny ones as ``p < 0.0001``."""
    if p < 1e-4:
        return "p < 0.0001"
    return f"p = {p:.2g}"
