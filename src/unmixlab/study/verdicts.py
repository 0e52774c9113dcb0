"""Verdicts on the seed's hypotheses under the preset's analysis plan.

Each verdict is supported, contradicted or inconclusive (:mod:`unmixlab.study.rules`), one
sentence with the deciding estimate, its CI and the margin or alpha it was judged against,
then a table (coefficients or pairwise comparisons with Holm-adjusted p-values and effect
sizes). The primary outcome of quality is museval SDR on the test tracks.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from unmixlab.study import rules
from unmixlab.study.design import in_design, terms_of, varying
from unmixlab.study.measurements import Measurements
from unmixlab.study.power import h3_terms
from unmixlab.study.results import ConfigurationSummary, number
from unmixlab.study.rules import BATCH, HIDDEN, HIDDEN_SQUARED, SAMPLES, Outcome
from unmixlab.study.settings import StudySettings, expand
from unmixlab.study.statistics import Fit, format_p, noninferiority, ols, pairwise

HYPOTHESES = {
    "H1": "Batch size and hidden size increases reduce the loss (raise test SDR).",
    "H1 time": "Training time relates non-linearly to batch size and hidden size.",
    "H2": "A unidirectional LSTM separates in real time without significant quality loss.",
    "H3": "Quality improves with hidden size up to a point, then worsens (a turning point).",
}
Table = tuple[list[str], list[list[str]]]


@dataclass(frozen=True)
class Verdict:
    """Whether the measured data support one of the seed's hypotheses.

    Attributes:
        key: ``H1``, ``H1 time``, ``H2``, ``H3``.
        hypothesis: the seed's hypothesis, as tested.
        outcome: supported, contradicted or inconclusive.
        sentence: one readable sentence: the deciding estimate, its CI, the margin or alpha.
        evidence: further lines (the model, the decision rule).
        tables: the coefficients and pairwise comparisons behind it, each (header, rows).
    """

    key: str
    hypothesis: str
    outcome: Outcome
    sentence: str
    evidence: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()


def verdicts(
    summaries: Sequence[ConfigurationSummary],
    settings: StudySettings,
    measurements: Measurements,
    stft: tuple[int, int],
) -> list[Verdict]:
    """The verdicts on H1 (quality and time), H2 and H3.

    Args:
        summaries: the study's configurations with their runs.
        settings: the study section (its analysis plan and budget).
        measurements: timing pass and paced streams.
        stft: the preset's (nfft, nhop): the design's STFT.
    """
    protocols = {c.name: c for c in expand(settings)}
    design = [
        s
        for s in summaries
        if s.name in protocols and in_design(protocols[s.name], s.variables, stft) and s.sdr
    ]
    alpha = settings.analysis.alpha
    return [
        quality_verdict(design, settings, alpha),
        time_verdict(design, measurements, settings.analysis.cost_margin, alpha),
        realtime_verdict(summaries, settings, measurements),
        turning_point_verdict(design, alpha),
    ]


def _ci(low: float, high: float, digits: int = 2) -> str:
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def _design_terms(design: Sequence[ConfigurationSummary]) -> tuple[list[float], dict]:
    runs = [(r, terms_of(s.variables)) for s in design for r in s.runs if r.sdr is not None]
    y = [r.sdr for r, _ in runs]
    shown = varying([t for _, t in runs])
    return y, {k: [t[k] for _, t in runs] for k in shown}


def _untestable(key: str, why: str) -> Verdict:
    return Verdict(key, HYPOTHESES[key], "inconclusive", f"Inconclusive: {why}")


def coefficient_table(fit: Fit, adjusted: dict[str, float] | None = None) -> Table:
    """Terms with estimate, 95 % CI, p (and Holm-adjusted p where given)."""
    header = ["term", "estimate (dB)", "95 % CI", "p", "Holm p"]
    rows = [
        [
            c.name,
            f"{c.estimate:+.3f}",
            _ci(c.low, c.high, 3),
            format_p(c.p).removeprefix("p = "),
            format_p(adjusted[c.name]).removeprefix("p = ")
            if adjusted and c.name in adjusted
            else "—",
        ]
        for c in fit.coefficients.values()
    ]
    return header, rows


def quality_verdict(
    design: Sequence[ConfigurationSummary], settings: StudySettings, alpha: float
) -> Verdict:
    """H1 quality: one OLS model, test SDR ~ log2 batch + log2 hidden + log2 samples/track."""
    y, terms = _design_terms(design)
    if not {BATCH, HIDDEN} <= set(terms) or len(y) <= len(terms) + 1:
        return _untestable(
            "H1",
            "the design does not vary batch and hidden size at an equal budget over enough "
            "scored runs to fit the model.",
        )
    fit = ols(y, terms, alpha)
    outcome, adjusted = rules.h1_loss(fit, alpha)
    b, h = fit.coefficients[BATCH], fit.coefficients[HIDDEN]
    q = dict(zip((BATCH, HIDDEN), adjusted, strict=True))
    sentence = (
        f"{outcome.capitalize()}: over {len(y)} runs of {len(design)} configurations trained "
        f"on {settings.budget.samples} samples each, test SDR changes by {b.estimate:+.2f} dB "
        f"per doubling of batch size (95 % CI {_ci(b.low, b.high)}, Holm p = "
        f"{q[BATCH]:.2g}) and {h.estimate:+.2f} dB per doubling of hidden size (95 % CI "
        f"{_ci(h.low, h.high)}, Holm p = {q[HIDDEN]:.2g}), judged at α = {alpha:g}."
    )
    evidence = [
        "Model: test SDR ~ " + " + ".join(terms) + f" (OLS over the runs; residual SD "
        f"{fit.residual_sd:.2f} dB). Supported needs both slopes positive at Holm p < α; "
        "contradicted, either negative at Holm p < α.",
    ]
    if SAMPLES in fit.coefficients:
        s = fit.coefficients[SAMPLES]
        evidence.append(
            f"Samples per track (at the same total samples): {s.estimate:+.2f} dB per doubling "
            f"(95 % CI {_ci(s.low, s.high)})."
        )
    tables = (coefficient_table(fit, q), pairwise_table(design, "SDR (dB)", alpha))
    evidence.append("Below: the model's coefficients, then each configuration against the first.")
    return Verdict(
        "H1", HYPOTHESES["H1"], outcome, sentence, tuple(evidence), tuple(t for t in tables if t[1])
    )


def pairwise_table(
    design: Sequence[ConfigurationSummary], what: str, alpha: float, reference: int = 0
) -> Table:
    """Every configuration against ``design[reference]``: SDR difference, CI, g, p, Holm p."""
    if len(design) < 2:
        return [], []
    base = design[reference]
    groups = {s.name: [r.sdr for r in s.runs if r.sdr is not None] for s in design}
    pairs = [(base.name, s.name) for s in design if s is not base]
    found = pairwise(groups, pairs, alpha)
    header = ["comparison", f"Δ {what}", "95 % CI", "Hedges' g", "p", "Holm p"]
    rows = [
        [
            f"{p.b} − {p.a}",
            f"{p.difference:+.3f}",
            _ci(p.low, p.high, 3),
            "—" if math.isnan(p.hedges_g) else f"{p.hedges_g:+.2f}",
            f"{p.p:.2g}",
            f"{p.p_holm:.2g}",
        ]
        for p in found
    ]
    return header, rows


def time_verdict(
    design: Sequence[ConfigurationSummary],
    measurements: Measurements,
    cost_margin: float,
    alpha: float,
) -> Verdict:
    """H1 time: log2(measured cost / cost model) on the design's log2 sizes, one per config."""
    timed = [s for s in design if s.name in measurements.costs]
    points = [terms_of(s.variables) for s in timed]
    terms = {k: [p[k] for p in points] for k in varying(points)}
    if not terms or len(timed) <= len(terms) + 1:
        return _untestable(
            "H1 time", "the timing pass measured too few design configurations for the model."
        )
    y = [
        math.log2(
            measurements.costs[s.name].ms_per_sample / measurements.costs[s.name].work_per_sample
        )
        for s in timed
    ]
    fit = ols(y, terms, alpha)
    decision = rules.h1_time(fit, cost_margin, alpha)
    if decision.outcome == "supported":
        key = min(decision.departure, key=decision.departure.get)
        rule = f"departure beyond ×{cost_margin:g}: Holm p = {decision.departure[key]:.2g}"
    else:
        key = max(decision.equivalence, key=decision.equivalence.get)
        rule = f"within ×{cost_margin:g} (TOST): p = {decision.equivalence[key]:.2g}"
    c = fit.coefficients[key]
    sentence = (
        f"{decision.outcome.capitalize()}: the measured cost per training sample, over the "
        "cost model (parameters × frames per sample), changes by "
        f"×{2**c.estimate:.2f} per doubling of {key.removeprefix('log2 ')} (95 % CI "
        f"[×{2**c.low:.2f}, ×{2**c.high:.2f}]; {rule}), judged at α = {alpha:g}."
    )
    header = ["term", "factor per doubling", "95 % CI", "departure Holm p", "within-margin p"]
    rows = [
        [
            t,
            f"×{2 ** fit.coefficients[t].estimate:.3f}",
            f"[×{2 ** fit.coefficients[t].low:.3f}, ×{2 ** fit.coefficients[t].high:.3f}]",
            f"{decision.departure[t]:.2g}",
            f"{decision.equivalence[t]:.2g}",
        ]
        for t in decision.departure
    ]
    evidence = (
        f"Model: log2(measured ms per sample / (parameters × frames)) ~ {' + '.join(terms)}, "
        f"one point per configuration from the timing pass ({len(timed)} configurations). "
        "Under the cost model every slope is 0; supported needs a slope beyond the margin, "
        "contradicted every slope within it.",
    )
    return Verdict(
        "H1 time", HYPOTHESES["H1 time"], decision.outcome, sentence, evidence, ((header, rows),)
    )


def _h2_pair(
    summaries: Sequence[ConfigurationSummary], settings: StudySettings
) -> tuple[ConfigurationSummary, ConfigurationSummary] | None:
    by_name = {s.name: s for s in summaries}
    if settings.analysis.h2_pair:
        bi, uni = settings.analysis.h2_pair
        if bi in by_name and uni in by_name:
            return by_name[bi], by_name[uni]
        return None
    for uni in summaries:
        if uni.variables.get("unidirectional"):
            for bi in summaries:
                others = {k for k in uni.variables if uni.variables[k] != bi.variables.get(k)}
                if others == {"unidirectional"}:
                    return bi, uni
    return None


def realtime_verdict(
    summaries: Sequence[ConfigurationSummary],
    settings: StudySettings,
    measurements: Measurements,
) -> Verdict:
    """H2: non-inferiority of the unidirectional twin's test SDR, and zero missed deadlines."""
    plan = settings.analysis
    pair = _h2_pair(summaries, settings)
    if pair is None or not pair[0].sdr or not pair[1].sdr:
        return _untestable("H2", "the study has no scored (bidirectional, unidirectional) pair.")
    bi, uni = pair
    if pair[0].sdr.n < 2 or pair[1].sdr.n < 2:
        return _untestable("H2", "fewer than two seeds: no spread, no test.")
    test = noninferiority(
        [r.sdr for r in uni.runs if r.sdr is not None],
        [r.sdr for r in bi.runs if r.sdr is not None],
        plan.sdr_margin_db,
        plan.alpha,
    )
    stream = measurements.streams.get(uni.name)
    outcome = rules.h2(test, None if stream is None else stream.missed, plan.alpha)
    params = measurements.parameters
    sizes = (
        f" ({params[uni.name]:,} against {params[bi.name]:,} parameters)"
        if uni.name in params and bi.name in params
        else ""
    )
    sentence = (
        f"{outcome.capitalize()}: {uni.name} against {bi.name}{sizes} changes test SDR by "
        f"{test.difference:+.2f} dB ({100 * (1 - 2 * plan.alpha):.0f} % CI "
        f"{_ci(test.low, test.high)}) against a margin of −{plan.sdr_margin_db:g} dB "
        f"(non-inferiority p = {test.p_noninferior:.2g}, inferiority p = "
        f"{test.p_inferior:.2g}, α = {plan.alpha:g})"
    )
    if stream is None:
        sentence += "; its real-time stream was not measured."
    else:
        sentence += (
            f"; streamed at the pace of live audio ({len(stream.targets)} targets, "
            f"{stream.precision}, {stream.cpu}, {stream.threads} thread(s), blocks of "
            f"{stream.block_ms:.1f} ms, latency {stream.latency_ms:.1f} ms) it took p50 "
            f"{stream.p50_ms:.2f} / p99 {stream.p99_ms:.2f} ms a block and missed "
            f"{stream.missed} of {stream.blocks} deadlines."
        )
    causal = [s for s in summaries if s.variables.get("unidirectional") and s.sdr]
    header, rows = pairwise_table([bi, *causal], "SDR (dB)", plan.alpha)
    evidence = (
        "Real time needs zero missed deadlines on this CPU; quality needs the lower end of the "
        f"CI above −{plan.sdr_margin_db:g} dB (one-sided Welch test, statsmodels).",
    )
    return Verdict("H2", HYPOTHESES["H2"], outcome, sentence, evidence, ((header, rows),))


def turning_point_verdict(design: Sequence[ConfigurationSummary], alpha: float) -> Verdict:
    """H3: a quadratic in log2 hidden size; supported when it curves down inside the range."""
    y, terms = _design_terms(design)
    sizes = sorted({s.variables["hidden_size"] for s in design})
    if HIDDEN not in terms or len(sizes) < 3 or len(y) <= len(terms) + 2:
        return _untestable(
            "H3", "the design does not test three or more hidden sizes at an equal budget."
        )
    quadratic = h3_terms(terms)
    fit = ols(y, quadratic, alpha)
    centre = sum(terms[HIDDEN]) / len(terms[HIDDEN])
    tested = (math.log2(sizes[0]) - centre, math.log2(sizes[-1]) - centre)
    outcome, turn = rules.h3(fit, tested, alpha)
    c = fit.coefficients[HIDDEN_SQUARED]

    def size(x: float) -> str:
        return "∞" if not math.isfinite(x) else number(2 ** (x + centre), 3)

    if c.low <= 0 <= c.high:  # a flat curve has no turning point: a vertex CI means nothing
        where = (
            "no turning point can be placed (the curvature's CI includes 0, so its vertex is "
            f"undefined) within the tested {sizes[0]}–{sizes[-1]}"
        )
    else:
        where = (
            f"the fitted turning point lies at hidden size {size(turn.estimate)} (95 % CI "
            f"[{size(turn.low)}, {size(turn.high)}]) against the tested {sizes[0]}–{sizes[-1]}"
        )
    sentence = (
        f"{outcome.capitalize()}: test SDR curves by {c.estimate:+.2f} dB per squared doubling "
        f"of hidden size (95 % CI {_ci(c.low, c.high)}, p = {c.p:.2g}, α = {alpha:g}); {where}."
    )
    evidence = (
        "Model: test SDR ~ " + " + ".join(quadratic) + " (log2 hidden centred; vertex CI by "
        "the delta method). Supported needs the curvature negative at p < α and the vertex's "
        "CI inside the tested range.",
    )
    return Verdict("H3", HYPOTHESES["H3"], outcome, sentence, evidence, (coefficient_table(fit),))
