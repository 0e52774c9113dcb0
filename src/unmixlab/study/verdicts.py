"""Verdicts on the seed's hypotheses, decided conservatively from the measured spread.

A difference between two configurations counts only when it exceeds ``significance``
standard errors of the difference (Welch, from the spread over seeds); with one seed there
is no spread, and nothing is decided.
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from unmixlab.study.results import ConfigurationSummary, Stat, number
from unmixlab.study.settings import INDEPENDENT

Outcome = Literal["supported", "not supported", "inconclusive", "not tested"]


@dataclass(frozen=True)
class Difference:
    """How a quantity moves from configuration ``a`` to ``b``.

    Attributes:
        a: first configuration.
        b: second configuration.
        a_stat: the quantity in ``a``.
        b_stat: the quantity in ``b``.
        direction: +1 (b higher), -1 (b lower), 0 (spread larger than the effect), or None
            (no spread measured: fewer than two seeds).
    """

    a: ConfigurationSummary
    b: ConfigurationSummary
    a_stat: Stat
    b_stat: Stat
    direction: int | None

    @property
    def change(self) -> float:
        """``b`` minus ``a``."""
        return self.b_stat.mean - self.a_stat.mean

    @property
    def standard_error(self) -> float:
        """Standard error of the change (Welch)."""
        return math.hypot(self.a_stat.standard_error, self.b_stat.standard_error)

    def describe(self, what: str, digits: int = 4) -> str:
        """``what a→b: 9.5 ± 0.1 → 8.6 ± 0.2 (-0.9, 2.5 standard errors)``."""
        text = (
            f"{what} {self.a.name}→{self.b.name}: {self.a_stat.format(digits)} → "
            f"{self.b_stat.format(digits)} ({self.change:+.3g}"
        )
        if self.direction is None:
            return text + ", one seed: spread unknown)"
        ratio = abs(self.change) / self.standard_error if self.standard_error else math.inf
        return text + f", {ratio:.1f} standard errors)"


def compare(
    a: ConfigurationSummary,
    b: ConfigurationSummary,
    a_stat: Stat,
    b_stat: Stat,
    significance: float,
) -> Difference:
    """The difference of one quantity between two configurations, decided conservatively."""
    difference = Difference(a, b, a_stat, b_stat, None)
    if a_stat.n < 2 or b_stat.n < 2:
        return difference
    if abs(difference.change) <= significance * difference.standard_error:
        return Difference(a, b, a_stat, b_stat, 0)
    return Difference(a, b, a_stat, b_stat, 1 if difference.change > 0 else -1)


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
    size is × k, × k·m when both are): it is non-linear when the time ratio stays outside
    ``PROPORTIONAL_TOLERANCE`` of the size ratio (beyond the spread) for every pair.
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
        # relative standard error of the ratio (delta method)
        rel = math.hypot(ta.standard_error / ta.mean, tb.standard_error / tb.mean)
        gap = abs(math.log(ratio / size_ratio))
        tolerance = math.log(PROPORTIONAL_TOLERANCE)
        if min(ta.n, tb.n) < 2:
            part: Outcome = "inconclusive"
        elif gap > tolerance + significance * rel:
            part = "supported"
        elif gap < tolerance - significance * rel:
            part = "not supported"
        else:
            part = "inconclusive"
        time_parts.append(part)
        ratios.append(f"×{ratio:.2f} for size ×{size_ratio:g} ({a.name}→{b.name})")
        time_lines.append(
            f"time per epoch {a.name}→{b.name}: {ta.format()} s → {tb.format()} s "
            f"(×{ratio:.2f} for batch × hidden size ×{size_ratio:g}"
            + ("; one seed: spread unknown)" if min(ta.n, tb.n) < 2 else ")")
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


def _short(d: Difference) -> str:
    return f"{d.a.name}→{d.b.name} {number(d.a_stat.mean, 3)}→{number(d.b_stat.mean, 3)}"


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


def realtime_verdict(summaries: Sequence[ConfigurationSummary], significance: float) -> Verdict:
    """H2: does a unidirectional configuration separate in real time without losing quality?

    Real time means a real-time factor (compute seconds per audio second) below 1 by more than
    the spread. Quality is compared with the bidirectional configuration that differs only in
    direction: SDR (else best validation loss) must not be worse beyond the spread.
    """
    causal = [s for s in summaries if s.variables.get("unidirectional")]
    if not causal:
        return Verdict(
            "H2",
            HYPOTHESES["H2"],
            "not tested",
            "Not tested by this grid: it has no unidirectional configuration. Run the "
            "seed-study-realtime preset, which adds unidirectional variants.",
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
        margin = significance * rtf.standard_error
        if rtf.n < 2:  # timing noise unknown: decide only well clear of 1
            realtime: Outcome = (
                "supported"
                if rtf.mean < 1 / PROPORTIONAL_TOLERANCE
                else "not supported"
                if rtf.mean > PROPORTIONAL_TOLERANCE
                else "inconclusive"
            )
        elif rtf.mean + margin < 1:
            realtime = "supported"
        elif rtf.mean - margin > 1:
            realtime = "not supported"
        else:
            realtime = "inconclusive"
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
        clause = f"{uni.name} streams at a real-time factor of {number(rtf.mean, 3)} ({realtime})"
        if worst is not None and worst.mean >= 1:
            clause += f", though its slowest block took {number(worst.mean, 3)}× its duration"
        quality: Outcome = "supported"
        twins = [s for s in summaries if differing(s, uni) == {"unidirectional"}]
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
            clause += f"; against {twin.name}: {what}" + (
                " (worse beyond the spread)" if worse else ""
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
            "values. Run the study-hidden preset (a hidden-size grid)."
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
        clauses.append(f"best validation loss by hidden size ({curve}) is {shape} ({part})")
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
        key = tuple(s.variables[k] for k in INDEPENDENT if k != "hidden_size")
        groups.setdefault(key, []).append(s)
    series = []
    for members in groups.values():
        members = sorted(members, key=lambda s: s.variables["hidden_size"])
        if len({m.variables["hidden_size"] for m in members}) == len(members) >= 3:
            series.append(members)
    return series
