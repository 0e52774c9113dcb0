"""The study report: one self-contained HTML page and its markdown twin.

The HTML page embeds its plots as base64 PNG (``data:`` URIs), so it opens anywhere without
its folder; the markdown links the same PNGs, written next to it in ``<name>/``. Plots are
drawn with matplotlib's object API (Agg, no GUI backend).
"""

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from unmixlab.files import write_bytes
from unmixlab.render import render
from unmixlab.study import (
    INDEPENDENT,
    SEPARATION_METRICS,
    Baseline,
    ConfigurationSummary,
    Reference,
    Stat,
    StudyContext,
    number,
)
from unmixlab.study.measurements import Measurements
from unmixlab.study.statistics import format_p
from unmixlab.study.tradeoff import draw_pareto, study_points, tradeoff_rows
from unmixlab.study.verdicts import Verdict

Table = tuple[list[str], list[list[str]]]

# display name of each independent variable
VARIABLE_NAMES = {
    "epochs": "epochs",
    "nb_workers": "workers",
    "batch_size": "batch size",
    "hidden_size": "hidden size",
    "samples_per_track": "samples / track",
    "unidirectional": "LSTM",
    "nfft": "nfft",
    "nhop": "hop",
}
OUTCOME_COLOURS = {
    "supported": "#1a7f37",
    "contradicted": "#cf222e",
    "inconclusive": "#9a6700",
}
REPLICATION = (
    "A replication of the seed's protocol: its six configurations run as the seed ran them, a "
    "number of epochs each, so a bigger batch takes fewer optimiser steps (the confound is "
    "included, as in the seed). Losses compare only within one STFT setting."
)
ORIENTATION = (
    "Orientation only: different data (7-s MUSDB18 previews), different hardware. These are "
    "the seed's own numbers as it printed them; UMX (Original) is the seed's own museval "
    "measurement of the released model, not a published figure."
)
MEASURED = (
    "Test SDR (the primary outcome) is museval's (BSS Eval v4) SDR of the target, median over "
    "frames, then over the test tracks. Loss is the MSE of the target magnitude spectrogram "
    "(best valid loss: the lowest validation loss over the epochs); it is compared only "
    "within one STFT setting. *ms / sample (timing pass)* is the median wall time of one "
    "training step (forward, backward, Adam) over its batch, after warm-up steps, with the "
    "fastest and slowest repeat in brackets; *CPU ms / sample* the same in process CPU time. "
    "*Training wall / CPU* is the clock of each whole training (validation included), mean ± "
    "SD over seeds, the runs taken in a random, interleaved order. Values are mean ± SD over "
    "seeds."
)


@dataclass(frozen=True)
class Figure:
    """One plot of the report.

    Attributes:
        name: file stem.
        title: caption.
        png: the image.
    """

    name: str
    title: str
    png: bytes


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        html: the self-contained page.
        markdown: the markdown version.
        images: the PNG files the markdown links.
    """

    html: Path
    markdown: Path
    images: tuple[Path, ...]


FIGURES = "figures"  # the report's PNG folder, beside its markdown


def write_report(
    context: StudyContext,
    summaries: Sequence[ConfigurationSummary],
    verdicts: Sequence[Verdict],
    out_dir: Path,
    name: str = "report",
) -> ReportFiles:
    """Write ``out_dir/<name>.html``, ``out_dir/<name>.md`` and the PNGs in ``out_dir/figures/``.

    Every file is written under a temporary name, then renamed.
    """
    out_dir = Path(out_dir)
    figures = draw_figures(summaries, context.measurements or Measurements())
    images = tuple(write_bytes(out_dir / FIGURES / f"{f.name}.png", f.png) for f in figures)
    page = render_html(context, summaries, verdicts, figures)
    text = render_markdown(context, summaries, verdicts, figures, image_dir=FIGURES)
    return ReportFiles(
        write_bytes(out_dir / f"{name}.html", page.encode()),
        write_bytes(out_dir / f"{name}.md", text.encode()),
        images,
    )


# ---------------------------------------------------------------- tables (shared by both forms)


def _shown_variables(summaries: Sequence[ConfigurationSummary]) -> list[str]:
    """Independent variables worth a column: the seed's four, plus any that vary."""
    always = ("batch_size", "hidden_size", "samples_per_track", "epochs")
    return [
        k for k in INDEPENDENT if k in always or len({s.variables.get(k) for s in summaries}) > 1
    ]


def _value(key: str, value: object) -> str:
    if key == "unidirectional":
        return "uni" if value else "bi"
    return str(value)


def _stat(stat: Stat | None, digits: int = 4) -> str:
    return "—" if stat is None else stat.format(digits)


def seed_ms_per_sample(summary: ConfigurationSummary, reference_tracks: int) -> float | None:
    """The seed's training milliseconds per training sample, from its printed time."""
    ref = summary.reference
    if ref is None or ref.seconds is None:
        return None
    samples = reference_tracks * summary.variables["samples_per_track"]
    return 1000 * ref.seconds / (samples * summary.variables["epochs"])


def _budget(measurements: Measurements, name: str) -> list[str]:
    epochs, steps, samples = measurements.budgets.get(name, (None, None, None))
    return ["—" if v is None else str(v) for v in (epochs, steps, samples)]


def _clock(measurements: Measurements, name: str) -> tuple[Stat | None, Stat | None]:
    clocks = [c for c in measurements.clocks if c.configuration == name]
    return Stat.of(c.wall_seconds for c in clocks), Stat.of(c.cpu_seconds for c in clocks)


def design_table(
    summaries: Sequence[ConfigurationSummary],
    measurements: Measurements,
    protocols: dict[str, str],
    protocol: str,
) -> Table | None:
    """One protocol's configurations: sizes, parameters, budget, outcomes, costs and clocks."""
    chosen = [s for s in summaries if protocols.get(s.name, "budget") == protocol]
    if not chosen:
        return None
    variables = _shown_variables(summaries)
    header = ["configuration", *(VARIABLE_NAMES[k] for k in variables)]
    header += ["parameters", "epochs", "optimiser steps", "training samples"]
    header += ["test SDR (dB)", "best valid loss", "ms / sample (timing pass)"]
    header += ["CPU ms / sample", "training wall (s)", "training CPU (s)", "seeds"]
    rows = []
    for s in chosen:
        cost = measurements.costs.get(s.name)
        wall, cpu = _clock(measurements, s.name)
        parameters = measurements.parameters.get(s.name)
        rows.append(
            [
                s.name,
                *(_value(k, s.variables[k]) for k in variables),
                "—" if parameters is None else f"{parameters:,}",
                *_budget(measurements, s.name),
                _stat(s.sdr, 3),
                _stat(s.valid_loss),
                "—"
                if cost is None
                else f"{number(cost.ms_per_sample, 3)} [{number(cost.low, 3)}–"
                f"{number(cost.high, 3)}]",
                "—" if cost is None else number(cost.cpu_ms_per_sample, 3),
                _stat(wall, 3),
                _stat(cpu, 3),
                str(len(s.runs)),
            ]
        )
    return header, rows


def orientation_table(
    summaries: Sequence[ConfigurationSummary], baselines: Sequence[Baseline], reference_tracks: int
) -> Table | None:
    """The seed's own numbers, alone: loss, time, ms per sample, museval scores."""
    rows = []
    for ref in baselines:
        rows.append(
            [f"{ref.name} (the seed's measurement)", "—", "—", "—"]
            + [_score(ref, m.lower()) for m in SEPARATION_METRICS]
        )
    for s in summaries:
        ref = s.reference
        if ref is None:
            continue
        rate = seed_ms_per_sample(s, reference_tracks)
        rows.append(
            [
                s.name,
                "—" if ref.loss is None else number(ref.loss),
                ref.time or "—",
                "—" if rate is None else number(rate, 3),
                *(_score(ref, m.lower()) for m in SEPARATION_METRICS),
            ]
        )
    if not rows:
        return None
    header = ["model", "seed's loss", "seed's time", "seed's ms / sample"]
    return header + [f"seed's {m} (dB)" for m in SEPARATION_METRICS], rows


def plan_table(context: StudyContext) -> Table:
    """The analysis plan, per hypothesis: outcome, test, alpha, correction, margin."""
    plan = context.analysis
    alpha = f"{plan.alpha:g}"
    return ["hypothesis", "primary outcome", "test", "α", "correction", "margin"], [
        [
            "H1 quality",
            f"museval test SDR (≥ {plan.min_test_tracks} test tracks)",
            "one OLS model: SDR ~ log2 batch + log2 hidden + log2 samples per track",
            alpha,
            "Holm over the batch and hidden slopes",
            "—",
        ],
        [
            "H1 time",
            "cost per training sample (timing pass) over the cost model (parameters × frames)",
            "OLS slopes: departure beyond the margin / TOST within it",
            alpha,
            "Holm over the slopes (departure)",
            f"×{plan.cost_margin:g} per doubling",
        ],
        [
            "H2",
            "museval test SDR; missed deadlines of a paced stream (four targets)",
            "Welch non-inferiority (statsmodels), zero missed deadlines",
            alpha,
            "one primary pair (pairwise table: Holm)",
            f"−{plan.sdr_margin_db:g} dB",
        ],
        [
            "H3",
            "museval test SDR",
            "quadratic in log2 hidden size; vertex CI by the delta method",
            alpha,
            "—",
            "vertex CI inside the tested sizes",
        ],
    ]


def baseline_table(measurements: Measurements) -> Table | None:
    """The baselines' test SDR: the mixture as the estimate, the oracle mask."""
    if not measurements.baselines:
        return None
    return ["baseline", "test SDR (dB)"], [
        [name, number(value, 3)] for name, value in measurements.baselines.items()
    ]


def stream_table(measurements: Measurements) -> Table | None:
    """The paced streams: targets, precision, CPU, block, latency, p50/p99, misses."""
    if not measurements.streams:
        return None
    header = [
        "configuration", "targets", "precision", "CPU", "threads", "block (ms)",
        "latency (ms)", "p50 (ms)", "p99 (ms)", "slowest (ms)", "missed / blocks",
        "bidirectional offline RTF",
    ]  # fmt: skip
    rows = [
        [
            p.configuration,
            ", ".join(p.targets),
            p.precision,
            p.cpu,
            str(p.threads),
            f"{p.block_ms:.1f}",
            f"{p.latency_ms:.1f}",
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            f"{p.worst_ms:.2f}",
            f"{p.missed} / {p.blocks}",
            "—" if p.offline_rtf is None else f"{p.offline_rtf:.3f}",
        ]
        for p in measurements.streams.values()
    ]
    return header, rows


def clock_table(measurements: Measurements) -> Table | None:
    """Every training in run order: wall and CPU clock, the machine's load around it."""
    if not measurements.clocks:
        return None
    header = ["order", "configuration", "seed", "wall (s)", "CPU (s)", "load before", "after"]
    rows = [
        [
            str(c.position),
            c.configuration,
            str(c.seed),
            number(c.wall_seconds, 3),
            number(c.cpu_seconds, 3),
            f"{c.load[0]:.2f}",
            f"{c.load[1]:.2f}",
        ]
        for c in measurements.clocks
    ]
    return header, rows


def _score(reference: Reference | None, metric: str) -> str:
    value = None if reference is None else getattr(reference, metric)
    return "—" if value is None else number(value, 4)


def runs_table(summaries: Sequence[ConfigurationSummary]) -> tuple[list[str], list[list[str]]]:
    """One row per MLflow run (the real-time factor only when some run measured it)."""
    has_rtf = any(r.rtf is not None for s in summaries for r in s.runs)
    header = [
        "configuration",
        "seed",
        "MLflow run",
        "epochs",
        "best valid loss",
        "last train loss",
        "training time (s)",
        "SDR (dB)",
    ] + ["real-time factor"] * has_rtf
    rows = [
        [
            s.name,
            str(r.seed),
            r.run_id,
            str(len(r.valid_loss)),
            number(r.best_valid_loss),
            number(r.final_train_loss),
            number(r.total_seconds, 3),
            "—" if r.sdr is None else number(r.sdr, 3),
        ]
        + ["—" if r.rtf is None else number(r.rtf, 3)] * has_rtf
        for s in summaries
        for r in s.runs
    ]
    return header, rows


def settings_table(context: StudyContext) -> tuple[list[str], list[list[str]]]:
    """The fixed settings: control variables and the rest."""
    from unmixlab.study import CONTROL

    rows = [
        [k, str(v), "control variable" if k in CONTROL else "fixed"]
        for k, v in context.fixed.items()
    ]
    return ["setting", "value", "role"], rows


# ---------------------------------------------------------------- markdown and HTML

CODE_FACTS = ("command", "study run")  # facts shown as code


def _facts(context: StudyContext) -> list[tuple[str, str]]:
    seeds = ", ".join(map(str, context.seeds))
    facts = [
        ("MLflow experiment", context.experiment),
        ("study run", context.study_run_id),
        ("target", context.target),
        *context.data,
        ("hardware", context.hardware),
        ("seeds per configuration", f"{len(context.seeds)} ({seeds})"),
        (
            "design budget",
            f"{context.budget.samples} training samples per design configuration; learning "
            f"rate {context.budget.lr_rule} across batch sizes "
            f"({context.fixed.get('lr', '—')}, Adam)",
        ),
        ("run order", f"randomised and interleaved (seed {context.analysis.order_seed})"),
    ]
    if context.wall_seconds is not None:
        facts.append(("study wall time", f"{context.wall_seconds:.0f} s"))
    if context.command:
        facts.append(("command", context.command))
    if context.created:
        facts.append(("created", context.created))
    return [(key, value) for key, value in facts if value]


def power_lines(context: StudyContext) -> list[str]:
    """The power analysis: the smallest effects detected with the planned power."""
    power, plan = context.power, context.analysis
    if power is None:
        return []
    lines = [
        f"With {power.seeds} seeds per configuration, α = {plan.alpha:g} and an assumed "
        f"seed-to-seed SD of {plan.seed_sd_db:g} dB in test SDR ({plan.cost_sd:g} in log2 "
        "cost), the smallest effects detected with "
        f"{plan.power:.0%} power are:",
        *power.lines(plan.sdr_margin_db, plan.cost_margin),
    ]
    if power.seeds_needed > 50:
        lines.append("No seed count up to 50 meets the plan's targets with this design.")
    elif power.seeds < power.seeds_needed:
        lines.append(
            f"The plan's targets (an H1 slope of {plan.sdr_slope_db:g} dB per doubling, H2 "
            f"non-inferiority at a {plan.sdr_margin_db:g} dB margin) need "
            f"{power.seeds_needed} seeds: this study is underpowered for them."
        )
    else:
        lines.append(
            f"The plan's targets need {power.seeds_needed} seeds; this study has {power.seeds}."
        )
    return lines


def _template_context(
    context: StudyContext,
    summaries: Sequence[ConfigurationSummary],
    verdicts: Sequence[Verdict],
    figures: Sequence[Figure],
) -> dict[str, object]:
    """What both report templates show."""
    measurements = context.measurements or Measurements()
    protocols = {
        s.name: ("seed" if s.reference is not None else "budget") for s in summaries
    } | dict(context.protocols)
    return {
        "context": context,
        "facts": _facts(context),
        "code_facts": CODE_FACTS,
        "links": {"study run": context.study_run_url},
        "verdicts": verdicts,
        "plan_table": plan_table(context),
        "power_lines": power_lines(context),
        "design_table": design_table(summaries, measurements, protocols, "budget"),
        "replication_table": design_table(summaries, measurements, protocols, "seed"),
        "replication_note": REPLICATION,
        "orientation_table": orientation_table(
            summaries, context.baselines, context.reference_tracks
        ),
        "orientation_note": ORIENTATION,
        "baseline_table": baseline_table(measurements),
        "stream_table": stream_table(measurements),
        "clock_table": clock_table(measurements),
        "loss_sdr": loss_sdr_correlation(summaries),
        "measured": MEASURED,
        "figures": figures,
        "settings_table": settings_table(context),
        "runs_table": runs_table(summaries),
        "realtime_table": realtime_table(summaries),
    }


def realtime_table(
    summaries: Sequence[ConfigurationSummary],
) -> tuple[list[str], list[list[str]]] | None:
    """The real-time trade-off: latency, ``stream_rtf``, SDR and the Pareto front.

    None when no causal configuration was streamed and scored.
    """
    points = study_points(summaries)
    return tradeoff_rows(points) if any(p.latency_ms is not None for p in points) else None


def render_markdown(
    context: StudyContext,
    summaries: Sequence[ConfigurationSummary],
    verdicts: Sequence[Verdict],
    figures: Sequence[Figure],
    image_dir: str,
) -> str:
    """The report as markdown; images link ``<image_dir>/<figure>.png`` (none: no plots)."""
    values = _template_context(context, summaries, verdicts, figures)
    return render("study_report.md.j2", image_dir=image_dir, **values)


def render_html(
    context: StudyContext,
    summaries: Sequence[ConfigurationSummary],
    verdicts: Sequence[Verdict],
    figures: Sequence[Figure],
) -> str:
    """The report as one self-contained HTML page (plots as ``data:`` URIs)."""
    values = _template_context(context, summaries, verdicts, figures)
    return render("study_report.html.j2", colours=OUTCOME_COLOURS, **values)


# ---------------------------------------------------------------- plots


def draw_figures(
    summaries: Sequence[ConfigurationSummary], measurements: Measurements | None = None
) -> list[Figure]:
    """The report's plots: learning curves, loss against time, outcomes against sizes, SDR."""
    cpu = {
        (c.configuration, c.seed): c.cpu_seconds for c in (measurements or Measurements()).clocks
    }
    drawers: list[tuple[str, str, Callable]] = [
        (
            "learning_curves",
            "Learning curves: validation loss against training samples seen and CPU time",
            partial(_learning_curves, cpu=cpu),
        ),
        ("loss_vs_time", "Best validation loss against training time", _loss_vs_time),
        ("sizes", "Loss and test SDR against batch size and hidden size", _against_sizes),
    ]
    if any(s.sdr for s in summaries):
        drawers.append(("sdr", "Separation quality (museval SDR) by configuration", _sdr_bars))
    if any(r.valid_sdr for s in summaries for r in s.runs):
        drawers.append(("loss_vs_sdr", "Validation loss against validation SDR", _loss_vs_sdr))
    if realtime_table(summaries):
        drawers.append(("pareto", "Real time: SDR against latency, the Pareto front", _pareto))
    return [Figure(name, title, _render(draw, summaries)) for name, title, draw in drawers]


def _render(draw: Callable, summaries: Sequence[ConfigurationSummary]) -> bytes:
    from matplotlib.figure import Figure as MplFigure  # Agg canvas, no pyplot state

    figure = MplFigure(figsize=(12, 4.5), dpi=100, layout="constrained")
    draw(figure, summaries, _colours(summaries))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _colours(summaries: Sequence[ConfigurationSummary]) -> dict[str, object]:
    from matplotlib import colormaps

    palette = colormaps["tab10"] if len(summaries) <= 10 else colormaps["tab20"]
    return {s.name: palette(i % palette.N) for i, s in enumerate(summaries)}


def _learning_curves(figure, summaries, colours, cpu: dict) -> None:
    """Validation loss per epoch against samples seen and against CPU seconds.

    A run's CPU time (its whole training, from the flow's clock) is shared over its epochs in
    proportion to their training-pass wall time; without a clock, the panel shows wall time.
    """
    axes = figure.subplots(1, 2, sharey=True)
    for s in summaries:
        for index, r in enumerate(s.runs):
            label = s.name if index == 0 else None
            per_epoch = r.samples_per_epoch or 0
            seen = [per_epoch * (e + 1) for e in range(len(r.valid_loss))]
            axes[0].plot(seen, r.valid_loss, color=colours[s.name], alpha=0.7, label=label)
            total = cpu.get((r.configuration, r.seed))
            passes = list(r.train_seconds[: len(r.valid_loss)])
            scale = total / sum(passes) if total and sum(passes) else 1.0
            clock = [scale * sum(passes[: e + 1]) for e in range(len(passes))]
            axes[1].plot(clock, r.valid_loss[: len(clock)], color=colours[s.name], alpha=0.7)
    axes[0].set_xlabel("training samples seen")
    axes[1].set_xlabel("CPU seconds (training)" if cpu else "training-pass wall seconds")
    for ax in axes:
        ax.set_xscale("log")
    axes[0].set_ylabel("validation loss (one line per run)")
    axes[0].legend(fontsize="small", ncol=2)


def _errorbar(ax, x: Stat, y: Stat, colour, name: str) -> None:
    ax.errorbar(
        x.mean,
        y.mean,
        xerr=x.sd or None,
        yerr=y.sd or None,
        fmt="o",
        color=colour,
        capsize=3,
        markersize=7,
        label=name,
    )


def _loss_vs_time(figure, summaries, colours) -> None:
    ax = figure.subplots()
    for s in summaries:
        ax.scatter(
            [r.total_seconds for r in s.runs],
            [r.best_valid_loss for r in s.runs],
            color=colours[s.name],
            alpha=0.35,
            s=18,
        )
        _errorbar(ax, s.total_seconds, s.valid_loss, colours[s.name], s.name)
    ax.set_xlabel("training time (s, training passes only)")
    ax.set_ylabel("best validation loss")
    ax.legend(fontsize="small")


def _against_sizes(figure, summaries, colours) -> None:
    axes = figure.subplots(1, 4)
    panels = [
        ("batch_size", "valid_loss", "best valid loss"),
        ("hidden_size", "valid_loss", "best valid loss"),
        ("batch_size", "sdr", "test SDR (dB)"),
        ("hidden_size", "sdr", "test SDR (dB)"),
    ]
    for ax, (variable, quantity, ylabel) in zip(axes, panels, strict=True):
        for index, s in enumerate(summaries):
            stat = getattr(s, quantity)
            if stat is None:
                continue
            # dodge configurations sharing a size apart (a few percent on the log axis)
            x = s.variables[variable] * 2 ** (0.06 * (index - (len(summaries) - 1) / 2))
            ax.errorbar(
                x,
                stat.mean,
                yerr=stat.sd or None,
                fmt="o",
                color=colours[s.name],
                capsize=3,
                label=s.name,
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel(VARIABLE_NAMES[variable])
        ax.set_ylabel(ylabel)
        values = sorted({s.variables[variable] for s in summaries})
        ax.set_xticks(values, [str(v) for v in values])
        ax.margins(x=0.15)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="outside upper center",
        ncol=min(len(labels), 6),
        fontsize="small",
        frameon=False,
    )


def _loss_vs_sdr(figure, summaries, colours) -> None:
    ax = figure.subplots()
    for s in summaries:
        for index, r in enumerate(s.runs):
            epochs = min(len(r.valid_loss), len(r.valid_sdr))
            ax.plot(
                r.valid_loss[:epochs],
                r.valid_sdr[:epochs],
                marker="o",
                markersize=4,
                color=colours[s.name],
                alpha=0.7,
                label=s.name if index == 0 else None,
            )
    ax.set_xlabel("validation loss (per epoch)")
    ax.set_ylabel("validation global SDR (dB, per epoch)")
    ax.legend(fontsize="small")


def loss_sdr_correlation(summaries: Sequence[ConfigurationSummary]) -> str | None:
    """Spearman's rank correlation of validation loss and SDR over every epoch of every run.

    Returns:
        A sentence with ρ, its p-value and the counts; None when no SDR was logged.
    """
    from scipy import stats

    pairs = [
        (loss, sdr)
        for s in summaries
        for r in s.runs
        for loss, sdr in zip(r.valid_loss, r.valid_sdr, strict=False)
        if math.isfinite(loss) and math.isfinite(sdr)
    ]
    if len(pairs) < 3:
        return None
    rho, p = stats.spearmanr([loss for loss, _ in pairs], [sdr for _, sdr in pairs])
    runs = sum(1 for s in summaries for r in s.runs if r.valid_sdr)
    return (
        f"Spearman's ρ between validation loss and validation SDR: {rho:.2f} "
        f"({format_p(p)}, {len(pairs)} epochs of {runs} runs); negative means a lower loss "
        "goes with better separation."
    )


def _pareto(figure, summaries, colours) -> None:
    draw_pareto(figure.subplots(), study_points(summaries))


def _sdr_bars(figure, summaries, colours) -> None:
    ax = figure.subplots()
    scored = [s for s in summaries if s.sdr]
    ax.bar(
        [s.name for s in scored],
        [s.sdr.mean for s in scored],
        yerr=[s.sdr.sd for s in scored],
        color=[colours[s.name] for s in scored],
        capsize=4,
    )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel("SDR (dB, higher is better)")
