"""Verdicts on the seed's hypotheses, decided from the measured spread over seeds.

A difference between two configurations counts only when Welch's t-test over the seeds
finds it significant at the level ``significance`` (e.g. 0.05); with one seed there is no
spread, and nothing is decided. Every sentence states its p-values and numbers of seeds
(:mod:`unmixlab.study.statistics` decides and words them).
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from unmixlab.study.results import ConfigurationSummary, Stat, number
from unmixlab.study.settings import INDEPENDENT
from unmixlab.study.statistics import (
    TestResult,
    describe_test,
    direction,
    one_sample,
    welch,
)

Outcome = Literal["supported", "not supported", "inconclusive", "not tested"]


@dataclass(frozen=True)
class Difference:
    """How a quantity moves from configuration ``a`` to ``b``.

    Attributes:
        a: first configuration.
        b: second configuration.
        a_stat: the quantity in ``a``.
        b_stat: the quantity in ``b``.
        test: Welch's t-test of ``b`` against ``a`` (None: fewer than two seeds).
        direction: +1 (b higher), -1 (b lower), 0 (not significant), or None (no test).
    """

    a: ConfigurationSummary
    b: ConfigurationSummary
    a_stat: Stat
    b_stat: Stat
    test: TestResult | None
    direction: int | None

    @property
    def change(self) -> float:
        """``b`` minus ``a``."""
        return self.b_stat.mean - self.a_stat.mean

    def describe(self, what: str, digits: int = 4) -> str:
        """One line: ``what a→b: 9.5 ± 0.1 → 8.6 ± 0.2 (-0.9; p = 0.003, Welch's t-test ...)``.

        Args:
            what: the quantity's name.
            digits: significant digits of the means.
        """
        return (
            f"{what} {self.a.name}→{self.b.name}: {self.a_stat.format(digits)} → "
            f"{self.b_stat.format(digits)} ({self.change:+.3g}; {describe_test(self.test)})"
        )


def compare(
    a: ConfigurationSummary,
    b: ConfigurationSummary,
    a_stat: Stat,
    b_stat: Stat,
    significance: float,
) -> Difference:
    """The difference of one quantity between two configurations, tested at ``significance``."""
    test = welch(a_stat, b_stat)
    return Difference(a, b, a_stat, b_stat, test, direction(test, significance))


def differing(a: ConfigurationSummary, b: ConfigurationSummary) -> set[str]:
    """The independent variables whose values differ between two configurations."""
    return {k for k in INDEPENDENT if a.variables.get(k) != b.variables.get(k)}


@dataclass(frozen=True)
class Verdict:
    """Whether the measured data support one of the seed's hypotheses.

    Attributes:
        key: ``H1``, ``H2``, ``H3``.
        hypothesis: the seed's wording.
        outcome: supported, not supported, inconclusive or not tested.
        sentence: the verdict with its numbers.
        evidence: one line per comparison behind it.
    """

    key: str
    hypothesis: str
    outcome: Outcome
    sentence: str
    evidence: tuple[str, ...] = field(default=())


HYPOTHESES = {
    "H1": "Batch size and hidden size increases reduce the loss, with non-linear training-time "
    "relationships.",
    "H2": "Replacing the bidirectional LSTM with a unidirectional one achieves real-time "
    "separation (without significant quality loss).",
    "H3": "Hidden size relates directly to loss convergence up to a point, after which the "
    "relation inverts.",
}
# a time ratio within this factor of the size ratio counts as proportional
PROPORTIONAL_TOLERANCE = 1.25


def verdicts(summaries: Sequence[ConfigurationSummary], significance: float) -> list[Verdict]:
    """The verdicts on the seed's three hypotheses from the study's summaries."""
    return [
        batch_hidden_verdict(summaries, significance),
        realtime_verdict(summaries, significance),
        hidden_turning_point_verdict(summaries, significance),
    ]


def _combine(parts: Sequence[Outcome]) -> Outcome:
    if "not supported" in parts:
        return "not supported"
    if parts and all(p == "supported" for p in parts):
        return "supported"
    return "inconclusive"


def _one_seed_hint(differences: Sequence[Difference]) -> str:
    if any(d.direction is None for d in differences):
        return " Rerun with --seeds 3 or more to measure the spread over seeds."
    return ""


def batch_hidden_verdict(summaries: Sequence[ConfigurationSummary], significance: float) -> Verdict:
    """H1: among configurations differing only in batch and/or hidden size, larger → lower loss?

    The loss part is supported when every such increase lowers the best validation loss by more
    than the spread, and not supported when any raises it so. The time part asks whether the
    training-pass time per epoch scales in proportion to the size (× k when batch or hidden
    size is × k, × k·m when both are): it is non-linear when, for every pair, the time ratio
    lies outside ``PROPORTIONAL_TOLERANCE`` of the size ratio and Welch's t-test of the log
    times (``b``'s less the log size ratio, against ``a``'s) rejects proportional scaling.
    """
    pairs = [
        (a, b)
        for a, b in itertools.permutations(summaries, 2)
        if differing(a, b)
        and differing(a, b) <= {"batch_size", "hidden_size"}
        and b.variables["batch_size"] >= a.variables["batch_size"]
        and b.variables["hidden_size"] >= a.variables["hidden_size"]
    ]
    if not pairs:
        return Verdict(
            "H1",
            HYPOTHESES["H1"],
            "not tested",
            "Not tested by this grid: no two configurations differ only by larger batch and/or "
            "hidden size.",
        )
    losses = [compare(a, b, a.valid_loss, b.valid_loss, significance) for a, b in pairs]
    loss_parts: list[Outcome] = [
        {-1: "supported", 1: "not supported"}.get(d.direction, "inconclusive") for d in losses
    ]
    loss_outcome = _combine(loss_parts)

    time_parts: list[Outcome] = []
    time_lines = []
    ratios = []
    for a, b in pairs:
        size_ratio = (b.variables["batch_size"] / a.variables["batch_size"]) * (
            b.variables["hidden_size"] / a.variables["hidden_size"]
        )
        ta, tb = a.seconds_per_epoch, b.seconds_per_epoch
        ratio = tb.mean / ta.mean
        test = proportional_time_test(a, b, size_ratio)
        moved = direction(test, significance)
        outside = abs(math.log(ratio / size_ratio)) > math.log(PROPORTIONAL_TOLERANCE)
        if moved is None:
            part: Outcome = "inconclusive"
        elif moved and outside:
            part = "supported"
        elif not moved and not outside:
            part = "not supported"
        else:
            part = "inconclusive"
        time_parts.append(part)
        words = f"{describe_test(test)}, against proportional scaling"
        ratios.append(f"×{ratio:.2f} for size ×{size_ratio:g} ({a.name}→{b.name}; {words})")
        time_lines.append(
            f"time per epoch {a.name}→{b.name}: {ta.format()} s → {tb.format()} s "
            f"(×{ratio:.2f} for batch × hidden size ×{size_ratio:g}; {words})"
        )
    time_outcome = _combine(time_parts)
    outcome = _combine([loss_outcome, time_outcome])

    lowered = sum(d.direction == -1 for d in losses)
    raised = sum(d.direction == 1 for d in losses)
    unclear = len(losses) - lowered - raised
    sentence = (
        f"{outcome.capitalize()}. Lower loss ({loss_outcome}): of {len(losses)} "
        f"increase{'s' * (len(losses) != 1)} of batch and/or hidden size, {lowered} lowered "
        f"the best validation loss beyond the spread, {raised} raised it and {unclear} stayed "
        "within the spread or unmeasured "
        f"({'; '.join(_short(d) for d in losses)}). Non-linear training time ({time_outcome}): "
        f"time per epoch changed {'; '.join(ratios)}, where proportional scaling would match "
        f"the size ratio within ×{PROPORTIONAL_TOLERANCE}." + _one_seed_hint(losses)
    )
    evidence = [d.describe("best valid loss") for d in losses] + time_lines
    evidence += _epoch_lines(summaries)
    return Verdict("H1", HYPOTHESES["H1"], outcome, sentence, tuple(evidence))


def proportional_time_test(
    a: ConfigurationSummary, b: ConfigurationSummary, size_ratio: float
) -> TestResult | None:
    """Welch's t-test of ``b``'s log time per epoch, less ``log(size_ratio)``, against ``a``'s.

    Significant: the time does not scale in proportion to the size.
    """
    log_a = Stat.of(math.log(r.seconds_per_epoch) for r in a.runs)
    log_b = Stat.of(math.log(r.seconds_per_epoch / size_ratio) for r in b.runs)
    return welch(log_a, log_b)


def _short(d: Difference) -> str:
    return (
        f"{d.a.name}→{d.b.name} {number(d.a_stat.mean, 3)}→{number(d.b_stat.mean, 3)} "
        f"({describe_test(d.test)})"
    )


def _epoch_lines(summaries: Sequence[ConfigurationSummary]) -> list[str]:
    """How total training time follows the number of epochs (the seed's key finding)."""
    lines = []
    for a, b in itertools.permutations(summaries, 2):
        if differing(a, b) == {"epochs"} and b.variables["epochs"] > a.variables["epochs"]:
            ratio = b.total_seconds.mean / a.total_seconds.mean
            epochs = b.variables["epochs"] / a.variables["epochs"]
            lines.append(
                f"total training time {a.name}→{b.name}: {a.total_seconds.format()} s → "
                f"{b.total_seconds.format()} s (×{ratio:.2f} for epochs ×{epochs:g})"
            )
    return lines


STFT = frozenset({"nfft", "nhop"})  # what sets a causal model's latency


def realtime_verdict(summaries: Sequence[ConfigurationSummary], significance: float) -> Verdict:
    """H2: does a unidirectional configuration separate in real time without losing quality?

    Real time means a real-time factor (compute seconds per audio second) below 1 by more than
    the spread. Quality is compared with the bidirectional configuration that differs only in
    direction (else in direction and STFT, for a low-latency setting): SDR (else best
    validation loss) must not be worse beyond the spread. A causal configuration differing from
    another only in STFT adds the quality cost of its latency to the evidence.
    """
    causal = [s for s in summaries if s.variables.get("unidirectional")]
    if not causal:
        return Verdict(
            "H2",
            HYPOTHESES["H2"],
            "not tested",
            "Not tested by this grid: it has no unidirectional configuration. Run the "
            "seed-study preset, whose open-unmix-uni is the unidirectional twin of open-unmix.",
        )
    parts: list[Outcome] = []
    evidence = []
    clauses = []
    differences: list[Difference] = []
    for uni in causal:
        rtf = uni.rtf
        if rtf is None:
            parts.append("inconclusive")
            clauses.append(f"{uni.name}: real-time factor not measured")
            continue
        test = one_sample(rtf, 1.0)
        below = direction(test, significance)
        if below is None:  # timing noise unknown: decide only well clear of 1
            realtime: Outcome = (
                "supported"
                if rtf.mean < 1 / PROPORTIONAL_TOLERANCE
                else "not supported"
                if rtf.mean > PROPORTIONAL_TOLERANCE
                else "inconclusive"
            )
        else:
            realtime = {-1: "supported", 1: "not supported"}.get(below, "inconclusive")
        line = (
            f"real-time factor of {uni.name}: {rtf.format(3)} (compute s per audio s; < 1 keeps up"
        )
        worst = Stat.of(r.worst_block for r in uni.runs)
        latency = Stat.of(r.latency_ms for r in uni.runs)
        if worst is not None:
            line += f"; slowest block {number(worst.mean, 3)} of its duration"
        if latency is not None:
            line += f"; algorithmic latency {number(latency.mean, 3)} ms"
        evidence.append(line + ")")
        clause = (
            f"{uni.name} streams at a real-time factor of {number(rtf.mean, 3)} "
            f"({realtime}; against 1: {describe_test(test)})"
        )
        if worst is not None and worst.mean >= 1:
            clause += f", though its slowest block took {number(worst.mean, 3)}× its duration"
        quality: Outcome = "supported"
        twins = [s for s in summaries if differing(s, uni) == {"unidirectional"}] or [
            s for s in summaries if differing(s, uni) - STFT == {"unidirectional"}
        ]
        for longer in causal:  # the causal models with a longer window, else alike
            if (
                differing(longer, uni) <= STFT
                and longer.variables.get("nfft", 0) > uni.variables.get("nfft", 0)
                and longer.sdr
                and uni.sdr
            ):
                d = compare(longer, uni, longer.sdr, uni.sdr, significance)
                evidence.append(d.describe("SDR (dB) of a shorter STFT", 3))
        for twin in twins:
            if twin.sdr is not None and uni.sdr is not None:
                d = compare(twin, uni, twin.sdr, uni.sdr, significance)
                worse = d.direction == -1
                evidence.append(d.describe("SDR (dB)", 3))
                what = f"SDR {number(twin.sdr.mean, 3)} → {number(uni.sdr.mean, 3)} dB"
            else:
                d = compare(twin, uni, twin.valid_loss, uni.valid_loss, significance)
                worse = d.direction == 1
                evidence.append(d.describe("best valid loss"))
                what = f"loss {number(twin.valid_loss.mean, 3)} → {number(uni.valid_loss.mean, 3)}"
            quality = (
                "not supported" if worse else ("inconclusive" if d.direction is None else quality)
            )
            differences.append(d)
            clause += (
                f"; against {twin.name}: {what} ("
                + ("worse, " if worse else "")
                + f"{describe_test(d.test)})"
            )
        if not twins:
            clause += "; no bidirectional twin to compare quality with"
            quality = "inconclusive"
        parts.append(_combine([realtime, quality]))
        clauses.append(clause)
    outcome = _combine(parts)
    sentence = f"{outcome.capitalize()}: " + "; ".join(clauses) + "." + _one_seed_hint(differences)
    return Verdict("H2", HYPOTHESES["H2"], outcome, sentence, tuple(evidence))


def hidden_turning_point_verdict(
    summaries: Sequence[ConfigurationSummary], significance: float
) -> Verdict:
    """H3: is the loss lowest at an interior hidden size, both ends higher beyond the spread?

    It looks at configurations differing only in hidden size (three or more sizes). Not
    supported when the loss falls (or rises) all the way along the tested sizes.
    """
    series = _hidden_series(summaries)
    if not series:
        confounded = [
            compare(a, b, a.valid_loss, b.valid_loss, significance)
            for a, b in itertools.permutations(summaries, 2)
            if "hidden_size" in differing(a, b)
            and differing(a, b) <= {"hidden_size", "batch_size", "samples_per_track"}
            and b.variables["hidden_size"] > a.variables["hidden_size"]
        ]
        sentence = (
            "Not tested by this grid: hidden size never varies alone over three or more "
            "values. Run the seed-study preset, whose hidden-size sweep holds batch size fixed."
        )
        if confounded:
            sentence += (
                " Confounded with other changes: "
                + "; ".join(f"{_short(d)} ({_changes(d)})" for d in confounded)
                + "."
            )
        evidence = tuple(d.describe("best valid loss") for d in confounded)
        return Verdict("H3", HYPOTHESES["H3"], "not tested", sentence, evidence)

    parts: list[Outcome] = []
    clauses = []
    evidence = []
    for members in series:
        stats = [m.valid_loss for m in members]
        best = min(range(len(members)), key=lambda i: stats[i].mean)
        low = compare(members[best], members[0], stats[best], stats[0], significance)
        high = compare(members[best], members[-1], stats[best], stats[-1], significance)
        sizes = [m.variables["hidden_size"] for m in members]
        curve = ", ".join(f"{s}: {number(st.mean, 3)}" for s, st in zip(sizes, stats, strict=True))
        if 0 < best < len(members) - 1:
            part: Outcome = (
                "supported" if low.direction == 1 and high.direction == 1 else "inconclusive"
            )
            shape = f"lowest at hidden size {sizes[best]}"
        else:
            other = low if best == len(members) - 1 else high
            part = "not supported" if other.direction == 1 else "inconclusive"
            shape = f"monotone, lowest at the {'largest' if best else 'smallest'} size"
        parts.append(part)
        evidence += [d.describe("best valid loss") for d in (low, high) if d.a is not d.b]
        tests = "; ".join(
            f"{d.b.variables['hidden_size']} against {d.a.variables['hidden_size']}: "
            f"{describe_test(d.test)}"
            for d in (low, high)
            if d.a is not d.b
        )
        clauses.append(
            f"best validation loss by hidden size ({curve}) is {shape} ({part}; {tests})"
        )
    outcome = _combine(parts)
    sentence = f"{outcome.capitalize()}: " + "; ".join(clauses) + "."
    if any(m.valid_loss.n < 2 for members in series for m in members):
        sentence += " Rerun with --seeds 3 or more to measure the spread over seeds."
    return Verdict("H3", HYPOTHESES["H3"], outcome, sentence, tuple(evidence))


def _changes(d: Difference) -> str:
    return ", ".join(
        f"{k.replace('_', ' ')} {d.a.variables[k]}→{d.b.variables[k]}"
        for k in INDEPENDENT
        if k in differing(d.a, d.b)
    )


def _hidden_series(
    summaries: Sequence[ConfigurationSummary],
) -> list[list[ConfigurationSummary]]:
    """Groups of three or more configurations differing only in hidden size, by size."""
    groups: dict[tuple, list[ConfigurationSummary]] = {}
    for s in summaries:
        key = tuple(s.variables.get(k) for k in INDEPENDENT if k != "hidden_size")
        groups.setdefault(key, []).append(s)
    series = []
    for members in groups.values():
        members = sorted(members, key=lambda s: s.variables["hidden_size"])
        if len({m.variables["hidden_size"] for m in members}) == len(members) >= 3:
            series.append(members)
    return series
