"""The study report: one self-contained HTML page and its markdown twin.

The HTML page embeds its plots as base64 PNG (``data:`` URIs), so it opens anywhere without
its folder; the markdown links the same PNGs, written next to it in ``<name>/``. Plots are
drawn with matplotlib's object API (Agg, no GUI backend).
"""

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    Verdict,
    number,
)
from unmixlab.study.statistics import format_p
from unmixlab.study.tradeoff import draw_pareto, study_points, tradeoff_rows

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
    "not supported": "#cf222e",
    "inconclusive": "#9a6700",
    "not tested": "#57606a",
}
MEASURED = (
    "Loss is the MSE of the target magnitude spectrogram: *best valid loss* is the lowest "
    "validation loss over the epochs (the model that is kept), *last train loss* the training "
    "loss of the last epoch. Training time is the wall clock of each epoch's training pass "
    "(data loading, forward, backward and optimiser steps over all batches), summed over the "
    "epochs; it excludes validation, checkpointing and museval scoring, and is measured the "
    "same way for every run, one run at a time. *ms / sample* divides it by the training samples "
    "(chunks) of all epochs; the seed's is its printed time over 86 MUSDB18 training tracks x "
    "samples per track x epochs, so the ratio compares the machines per unit of work. SDR, "
    "SIR, ISR and SAR are museval's (BSS Eval v4) median over frames and test tracks. "
    "*Validation SDR* is the global SDR (MDX challenge) of the validation tracks after each "
    "epoch, the model's magnitude with the mixture's phase. The real-time factor "
    "(unidirectional configurations) is compute seconds per second of audio when the model "
    "streams noise block by block on one thread. Values are mean ± standard deviation over "
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


def write_report(
    context: StudyContext,
    summaries: Sequence[ConfigurationSummary],
    verdicts: Sequence[Verdict],
    out_dir: Path,
    name: str = "report",
) -> ReportFiles:
    """Write ``out_dir/<name>.html``, ``out_dir/<name>.md`` and the PNGs in ``out_dir/<name>/``.

    Every file is written under a temporary name, then renamed.
    """
    out_dir = Path(out_dir)
    figures = draw_figures(summaries)
    images = tuple(write_bytes(out_dir / name / f"{f.name}.png", f.png) for f in figures)
    page = render_html(context, summaries, verdicts, figures)
    text = render_markdown(context, summaries, verdicts, figures, image_dir=name)
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


def seed_table(
    summaries: Sequence[ConfigurationSummary], reference_tracks: int = 86
) -> tuple[list[str], list[list[str]]]:
    """The seed's table with the measurements: header and rows of text."""
    variables = _shown_variables(summaries)
    has_reference = any(s.reference for s in summaries)
    has_samples = any(s.ms_per_sample for s in summaries)
    has_seed_rate = has_samples and any(seed_ms_per_sample(s, 1) for s in summaries)
    has_sdr = any(s.sdr for s in summaries)
    has_rtf = any(s.rtf for s in summaries)
    header = ["configuration", *(VARIABLE_NAMES[k] for k in variables)]
    if has_reference:
        header += ["seed's loss", "seed's time"]
    header += ["best valid loss", "last train loss", "time / epoch (s)", "training time (s)"]
    header += ["samples / epoch", "ms / sample"] * has_samples
    header += ["seed's ms / sample", "ours / seed's"] * has_seed_rate
    header += ["SDR (dB)"] * has_sdr + ["real-time factor"] * has_rtf + ["seeds"]
    rows = []
    for s in summaries:
        row = [s.name, *(_value(k, s.variables[k]) for k in variables)]
        if has_reference:
            ref = s.reference
            row += [
                number(ref.loss) if ref and ref.loss is not None else "—",
                ref.time if ref and ref.time else "—",
            ]
        row += [
            _stat(s.valid_loss),
            _stat(s.train_loss),
            _stat(s.seconds_per_epoch, 3),
            _stat(s.total_seconds, 3),
        ]
        if has_samples:
            row += [str(s.samples_per_epoch or "—"), _stat(s.ms_per_sample, 3)]
        if has_seed_rate:
            seed_rate = seed_ms_per_sample(s, reference_tracks)
            ours = s.ms_per_sample
            ratio = f"×{number(ours.mean / seed_rate, 3)}" if seed_rate and ours else "—"
            row += ["—" if seed_rate is None else number(seed_rate, 3), ratio]
        row += [_stat(s.sdr, 3)] * has_sdr + [_stat(s.rtf, 3)] * has_rtf
        row.append(str(len(s.runs)))
        rows.append(row)
    return header, rows


def separation_table(
    summaries: Sequence[ConfigurationSummary], baselines: Sequence[Baseline]
) -> tuple[list[str], list[list[str]]] | None:
    """Museval scores per configuration (mean ± sd over seeds) beside the seed's.

    Returns:
        Header and rows, the seed's published baselines first; None when nothing was scored.
    """
    ours = any(s.separation(m) for s in summaries for m in SEPARATION_METRICS)
    if not ours and not any(s.reference and s.reference.sdr for s in summaries):
        return None
    metrics = [m.lower() for m in SEPARATION_METRICS]
    header = ["configuration", *(f"{m} (dB)" for m in SEPARATION_METRICS)]
    header += [f"seed's {m}" for m in SEPARATION_METRICS]
    rows = [
        [f"{ref.name} (published)", *("—" for _ in metrics), *(_score(ref, m) for m in metrics)]
        for ref in baselines
    ]
    for s in summaries:
        rows.append(
            [
                s.name,
                *(_stat(s.separation(m), 3) for m in SEPARATION_METRICS),
                *(_score(s.reference, m) for m in metrics),
            ]
        )
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
    facts = [
        ("MLflow experiment", context.experiment),
        ("study run", context.study_run_id),
        ("target", context.target),
        ("data", context.data_root),
        ("data size", context.data_size),
        ("hardware", context.hardware),
        ("seeds per configuration", f"{len(context.seeds)} ({', '.join(map(str, context.seeds))})"),
        (
            "significance",
            f"a difference counts when Welch's t-test gives p < {context.significance:g}",
        ),
    ]
    if context.wall_seconds is not None:
        facts.append(("study wall time", f"{context.wall_seconds:.0f} s"))
    if context.command:
        facts.append(("command", context.command))
    if context.created:
        facts.append(("created", context.created))
    return [(key, value) for key, value in facts if value]


def _template_context(
    context: StudyContext,
    summaries: Sequence[ConfigurationSummary],
    verdicts: Sequence[Verdict],
    figures: Sequence[Figure],
) -> dict[str, object]:
    """What both report templates show."""
    return {
        "context": context,
        "facts": _facts(context),
        "code_facts": CODE_FACTS,
        "verdicts": verdicts,
        "seed_table": seed_table(summaries, context.reference_tracks),
        "separation_table": separation_table(summaries, context.baselines),
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


def draw_figures(summaries: Sequence[ConfigurationSummary]) -> list[Figure]:
    """The report's plots: loss curves, loss against time, loss and time against sizes, SDR."""
    drawers: list[tuple[str, str, Callable]] = [
        ("loss_curves", "Loss per epoch, by configuration", _loss_curves),
        ("loss_vs_time", "Best validation loss against training time", _loss_vs_time),
        ("sizes", "Loss and time per epoch against batch size and hidden size", _against_sizes),
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


def _mean_curve(
    curves: list[tuple[float, ...]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, mean, min and max over seeds (up to the shortest curve)."""
    length = min(len(c) for c in curves)
    columns = [[c[i] for c in curves] for i in range(length)]
    return (
        list(range(1, length + 1)),
        [sum(col) / len(col) for col in columns],
        [min(col) for col in columns],
        [max(col) for col in columns],
    )


def _loss_curves(figure, summaries, colours) -> None:
    axes = figure.subplots(1, 2, sharey=True)
    for ax, attribute, title in zip(
        axes, ("train_loss", "valid_loss"), ("training loss", "validation loss"), strict=True
    ):
        for s in summaries:
            epochs, mean, low, high = _mean_curve([getattr(r, attribute) for r in s.runs])
            ax.plot(epochs, mean, marker="o", color=colours[s.name], label=s.name)
            if len(s.runs) > 1:
                ax.fill_between(epochs, low, high, color=colours[s.name], alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel("MSE loss (mean over seeds; band: min–max)")
    axes[1].legend(fontsize="small")


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
        ("batch_size", "seconds_per_epoch", "time / epoch (s)"),
        ("hidden_size", "seconds_per_epoch", "time / epoch (s)"),
    ]
    for ax, (variable, quantity, ylabel) in zip(axes, panels, strict=True):
        for index, s in enumerate(summaries):
            stat = getattr(s, quantity)
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
