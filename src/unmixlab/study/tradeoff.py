"""The real-time trade-off as the study presents it: latency, streaming cost and quality.

Each :class:`Setting` (an STFT size, hop, block and LSTM direction) becomes a
:class:`TradeoffPoint` with its SDR over seeds and, when causal, its latency and
``stream_rtf``. :func:`tradeoff_table` renders one markdown table and :func:`pareto_plot` one
figure, SDR against latency with the Pareto front of the causal settings and the
bidirectional model as the offline reference; :func:`write_tradeoff` and
:func:`read_tradeoff` store them as JSON. The study report draws its points from MLflow
(:func:`study_points`); ``benchmarks/tradeoff_runs.py`` trains and scores them standalone.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unmixlab.render import markdown_table
from unmixlab.study.results import ConfigurationSummary, Stat, number
from unmixlab.study.settings import INDEPENDENT

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class Setting:
    """One point of the trade-off: STFT, block and LSTM direction.

    Attributes:
        name: label, e.g. ``causal 1024/256``.
        nfft: STFT size.
        nhop: hop size.
        block_hops: hops per streamed block (causal settings).
        causal: unidirectional LSTM (streams) or bidirectional (offline only).
        precision: weights while separating (``int8``: the float32 setting's trained models,
            quantized; :mod:`unmixlab.quantize`).
    """

    name: str
    nfft: int
    nhop: int
    block_hops: int = 1
    causal: bool = True
    precision: str = "float32"

    @property
    def stft(self) -> str:
        """``nfft/nhop``."""
        return f"{self.nfft}/{self.nhop}"


@dataclass(frozen=True)
class TradeoffPoint:
    """What one setting measured.

    Attributes:
        setting: the setting.
        sdr: museval SDR of the target over seeds (dB).
        latency_ms: algorithmic latency by impulses (None: offline, whole song).
        stream_rtf: streaming real-time factor, wall clock (None: offline).
        stream_cpu_rtf: the same in the streaming thread's CPU time, which other processes
            on a busy machine inflate less.
    """

    setting: Setting
    sdr: Stat
    latency_ms: float | None = None
    stream_rtf: float | None = None
    stream_cpu_rtf: float | None = None

    def as_dict(self) -> dict:
        """Flat JSON-able row."""
        return {
            **asdict(self.setting),
            "stft": self.setting.stft,
            "sdr_mean": self.sdr.mean,
            "sdr_sd": self.sdr.sd,
            "seeds": self.sdr.n,
            "latency_ms": self.latency_ms,
            "stream_rtf": self.stream_rtf,
            "stream_cpu_rtf": self.stream_cpu_rtf,
        }


def pareto_front(points: Sequence[TradeoffPoint]) -> list[TradeoffPoint]:
    """Causal points no other beats on latency, ``stream_rtf`` and SDR at once, by latency."""
    causal = [p for p in points if p.latency_ms is not None]

    def dominates(a: TradeoffPoint, b: TradeoffPoint) -> bool:
        pairs = [
            (a.latency_ms, b.latency_ms),
            (a.stream_rtf or 0, b.stream_rtf or 0),
            (-a.sdr.mean, -b.sdr.mean),
        ]
        return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)

    front = [p for p in causal if not any(dominates(q, p) for q in causal)]
    return sorted(front, key=lambda p: p.latency_ms)


def tradeoff_rows(points: Sequence[TradeoffPoint]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: setting, latency, ``stream_rtf`` (wall, CPU), SDR (mean ± sd), front."""
    front = {p.setting for p in pareto_front(points)}
    header = [
        "setting", "STFT", "block", "latency (ms)", "stream_rtf", "CPU", "SDR (dB)", "seeds",
        "Pareto",
    ]  # fmt: skip
    rows = []
    for p in points:
        rows.append(
            [
                p.setting.name,
                p.setting.stft,
                f"{p.setting.block_hops} hop(s)" if p.setting.causal else "whole song",
                "offline" if p.latency_ms is None else f"{p.latency_ms:.1f}",
                "—" if p.stream_rtf is None else number(p.stream_rtf, 3),
                "—" if p.stream_cpu_rtf is None else number(p.stream_cpu_rtf, 3),
                p.sdr.format(3),
                str(p.sdr.n),
                "yes" if p.setting in front else "",
            ]
        )
    return header, rows


def tradeoff_table(points: Sequence[TradeoffPoint]) -> str:
    """The markdown table of :func:`tradeoff_rows`."""
    return markdown_table(*tradeoff_rows(points))


STFT = frozenset({"nfft", "nhop"})  # what sets a causal model's latency


def differing(a: ConfigurationSummary, b: ConfigurationSummary) -> set[str]:
    """The independent variables whose values differ between two configurations."""
    return {k for k in INDEPENDENT if a.variables.get(k) != b.variables.get(k)}


def study_points(summaries: Sequence[ConfigurationSummary]) -> list[TradeoffPoint]:
    """A study's trade-off points: its causal configurations, streamed and scored.

    Then, as the offline reference, the bidirectional configurations they differ from only in
    direction and STFT.
    """
    causal = [s for s in summaries if s.variables.get("unidirectional") and s.sdr and s.rtf]
    points = []
    for s in causal:
        latency = Stat.of(r.latency_ms for r in s.runs)
        setting = Setting(
            s.name, s.variables["nfft"], s.variables["nhop"], s.runs[0].block_hops or 2
        )
        points.append(TradeoffPoint(setting, s.sdr, latency and latency.mean, s.rtf.mean))
    for s in summaries:
        if s.sdr and any(differing(s, c) - STFT == {"unidirectional"} for c in causal):
            setting = Setting(s.name, s.variables["nfft"], s.variables["nhop"], causal=False)
            points.append(TradeoffPoint(setting, s.sdr))
    return points


def pareto_plot(points: Sequence[TradeoffPoint], path: Path, title: str = "") -> Path:
    """:func:`draw_pareto` as a PNG file.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    draw_pareto(figure.add_subplot(), points, title)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return Path(path)


def draw_pareto(axes: "Axes", points: Sequence[TradeoffPoint], title: str = "") -> None:
    """SDR against latency (log axis) with spread bars, the causal front, the offline model.

    Each causal point is labelled with its ``stream_rtf``; one colour per STFT, float32 as
    circles labelled above, int8 as squares a little to the right labelled below (the same
    latency). The bidirectional model, which has no latency, is a horizontal band (mean ± sd).
    """
    causal = [p for p in points if p.latency_ms is not None]
    colours = {
        stft: f"C{i}" for i, stft in enumerate(dict.fromkeys(p.setting.stft for p in causal))
    }

    def x(p: TradeoffPoint) -> float:  # int8 beside float32 on the log axis
        return p.latency_ms * (1.0 if p.setting.precision == "float32" else 1.08)

    for p in causal:
        int8 = p.setting.precision != "float32"
        colour = colours[p.setting.stft]
        axes.errorbar(
            x(p), p.sdr.mean, yerr=p.sdr.sd, fmt="s" if int8 else "o", color=colour, capsize=4
        )
        rtf = "" if p.stream_rtf is None else f"\nstream_rtf {p.stream_rtf:.3g}"
        weights = f" {p.setting.precision}" if int8 else ""
        axes.annotate(
            f"{p.setting.stft}{weights}{rtf}",
            (x(p), p.sdr.mean),
            xytext=(6, -6) if int8 else (6, 6),
            textcoords="offset points",
            va="top" if int8 else "bottom",
            color=colour,
            fontsize="small",
        )
    front = pareto_front(points)
    axes.plot(
        [x(p) for p in front],
        [p.sdr.mean for p in front],
        "k--",
        lw=1,
        label="Pareto front",
    )
    for p in points:
        if p.latency_ms is None:
            axes.axhline(p.sdr.mean, color="grey", label=f"{p.setting.name} (offline)")
            axes.axhspan(p.sdr.mean - p.sdr.sd, p.sdr.mean + p.sdr.sd, color="grey", alpha=0.2)
    axes.set_xscale("log")
    latencies = sorted({p.latency_ms for p in causal})
    axes.set_xticks(latencies, [f"{ms:.1f}" for ms in latencies])
    axes.minorticks_off()
    axes.set_xlabel("algorithmic latency (ms)")
    axes.set_ylabel("SDR (dB), mean ± sd over seeds")
    axes.set_title(title or "Real time: latency, cost and quality")
    axes.legend(loc="lower right")


def write_tradeoff(points: Sequence[TradeoffPoint], out_dir: Path, notes: str = "") -> Path:
    """Write ``tradeoff.json``, ``tradeoff.md`` (table and notes) and ``pareto.png``."""
    from unmixlab.files import write_text
    from unmixlab.model_io import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "tradeoff.json", {"rows": [p.as_dict() for p in points]})
    pareto_plot(points, out_dir / "pareto.png")
    text = f"## Real time\n\n{tradeoff_table(points)}\n{notes}\n\n![Pareto front](pareto.png)\n"
    write_text(out_dir / "tradeoff.md", text)
    return out_dir


def read_tradeoff(path: Path) -> list[TradeoffPoint]:
    """The points of a ``tradeoff.json``."""
    rows = json.loads(Path(path).read_text())["rows"]
    fields = ("name", "nfft", "nhop", "block_hops", "causal", "precision")
    return [
        TradeoffPoint(
            Setting(**{k: row[k] for k in fields if k in row}),
            Stat(row["sdr_mean"], row["sdr_sd"], row["seeds"]),
            row["latency_ms"],
            row["stream_rtf"],
            row.get("stream_cpu_rtf"),
        )
        for row in rows
    ]
