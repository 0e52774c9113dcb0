"""Latency and real-time factor of streaming separation, beside offline causal separation.

One thread, four targets, stereo, 44.1 kHz, the reference 16 kHz bandwidth crop, randomly
initialised unidirectional models (timing does not depend on the weights; nothing is
downloaded). For each STFT / block configuration it prints:

- the algorithmic latency, measured with impulses (``unmixlab.realtime.impulse_latency``);
- ``stream_rtf``: the streaming separator's wall-clock seconds per audio second, in PyTorch and
  in onnxruntime (the step exported by ``unmixlab export onnx``), with the thread's CPU time;
  the slowest block against the block's duration;
- offline causal separation of the same audio: ``unmixlab.separator.Separator`` with the same
  unidirectional models (niter 0, as ``unmixlab separate``) and the streaming separator's
  one-pass reference (``StreamingSeparator.offline``), and streaming's cost over the former;
- the weights each block reads: streaming is bounded by memory bandwidth, not arithmetic;
- each figure for float32 weights and for int8 ones (``--precision int8``: dynamic
  quantization, :mod:`unmixlab.quantize`), whose offline columns run the int8 models too, and
  ``int8 vs f32``: the SDR of the int8 estimates against the float32 ones (dB; the higher, the
  less rounding changed).

Every measurement is repeated ``--repeats`` times, interleaved (streaming, onnxruntime,
offline, ...), and the fastest of each is kept: one run, the same disturbances for all.

    python benchmarks/realtime.py --quick    # hidden 256, 4 s of audio, 2 repeats
    python benchmarks/realtime.py            # hidden 256 and 512, 8 s, 3 repeats

The SDR column comes from a short training of every setting on the same data:
``benchmarks/realtime_quality.py`` writes ``runs/realtime-tradeoff/tradeoff.json``, read here
when it exists (``--sdr`` names another).
"""

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from unmixlab.config import TARGETS
from unmixlab.model import OpenUnmix
from unmixlab.model_io import save_torch, write_json, write_separator_json
from unmixlab.quantize import PRECISIONS, quantize
from unmixlab.realtime import RealtimeStats, impulse_latency, measure_stream, untrained_models
from unmixlab.separator import Separator
from unmixlab.streaming import StreamingSeparator
from unmixlab.study.tradeoff import read_tradeoff
from unmixlab.validation_sdr import global_sdr

RATE, BANDWIDTH = 44100, 16000
DEFAULT_SDR = Path("runs/realtime-tradeoff/tradeoff.json")


@dataclass(frozen=True)
class Setting:
    """One STFT and block configuration."""

    name: str
    nfft: int
    nhop: int
    block_hops: int


SETTINGS = (
    Setting("4096/1024", 4096, 1024, 2),
    Setting("1024/256", 1024, 256, 1),
    Setting("512/128", 512, 128, 1),
)
# issue 18's goals, hidden 256, one thread
GOALS = {"4096/1024": 0.10, "1024/256": 0.5}
MAX_COST_OVER_OFFLINE = 1.3

HEADER = (
    f"{'hidden':>6} {'stft':>9} {'block':>13} {'latency ms':>10} {'weights':>13}  "
    f"{'stream_rtf':>10} {'cpu':>6} {'worst/blk':>9} {'onnx rtf':>8}  "
    f"{'offline':>7} {'cpu':>6} {'one-pass':>8} {'stream/offline':>14} {'int8 vs f32':>11} "
    f"{'SDR dB':>7}"
)


@dataclass(frozen=True)
class Row:
    """What one setting measured in one precision (the fastest of each timing)."""

    precision: str
    latency: int  # samples, by impulses
    weight_bytes: int
    stats: RealtimeStats
    onnx_rtf: float | None
    offline: tuple[float, float]  # wall clock and CPU-time real-time factors
    one_pass: float
    agreement_db: float | None  # int8 estimates against the float32 ones

    @property
    def cost_over_offline(self) -> float:
        """Streaming's wall clock over offline causal separation's, same precision."""
        return self.stats.stream_rtf / self.offline[0]


def onnx_separator(
    models: dict[str, OpenUnmix], setting: Setting, folder: Path
) -> StreamingSeparator | None:
    """The same models streamed through onnxruntime (None when the export extra is missing)."""
    try:
        from unmixlab.export import export_onnx, load_onnx_separator
    except ImportError:
        return None
    model_dir = folder / setting.name.replace("/", "-")
    model_dir.mkdir()
    for target, model in models.items():
        save_torch(model.state_dict(), model_dir / f"{target}.pth")
        write_json(model_dir / f"{target}.json", {"model": model.config.model_dump()})
    write_separator_json(model_dir, RATE, setting.nfft, setting.nhop, 2)
    path = model_dir / "streaming.onnx"
    try:
        export_onnx(model_dir, path, setting.block_hops)
    except Exception as error:  # the exporter is optional here: report and go on
        print(f"  (no onnxruntime figure for {setting.name}: {error})")
        return None
    return load_onnx_separator(model_dir, path)


def offline_rtf(separate, audio: torch.Tensor) -> tuple[float, float]:
    """Wall-clock and CPU-time real-time factors of one offline call on ``audio``."""
    with torch.inference_mode():
        start, cpu = time.perf_counter(), time.thread_time()
        separate(audio)
        seconds = audio.shape[-1] / RATE
        return (time.perf_counter() - start) / seconds, (time.thread_time() - cpu) / seconds


def read_sdr(path: Path) -> dict[tuple[str, str], float]:
    """(STFT, precision) -> mean SDR of the causal model, from ``realtime_quality.py``."""
    if not path.is_file():
        if path != DEFAULT_SDR:
            raise SystemExit(f"--sdr {path}: no such file; run benchmarks/realtime_quality.py")
        print(f"(no SDR column: run benchmarks/realtime_quality.py --quick to write {path})")
        return {}
    print(f"SDR column from {path}")
    return {
        (p.setting.stft, p.setting.precision): p.sdr.mean
        for p in read_tradeoff(path)
        if p.setting.causal
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hidden 256, 4 s, 2 repeats")
    parser.add_argument("--seconds", type=float, help="audio per measurement [8; quick 4]")
    parser.add_argument("--repeats", type=int, help="interleaved repeats, fastest kept [3; 2]")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime column")
    parser.add_argument(
        "--sdr",
        type=Path,
        default=DEFAULT_SDR,
        help=f"tradeoff.json of benchmarks/realtime_quality.py [{DEFAULT_SDR}, if it exists]",
    )
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    repeats = args.repeats or (2 if args.quick else 3)
    hiddens = (256,) if args.quick else (256, 512)
    sdr = read_sdr(args.sdr)

    torch.set_num_threads(1)
    print(
        f"one thread, {len(TARGETS)} targets, stereo, {RATE} Hz, crop {BANDWIDTH} Hz, "
        f"random-init unidirectional models, {seconds:g} s of audio, fastest of {repeats} "
        f"interleaved repeats; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(HEADER)
    print("-" * len(HEADER))
    audio = 0.1 * torch.randn(2, int(seconds * RATE), generator=torch.Generator().manual_seed(0))
    verdicts = []
    with tempfile.TemporaryDirectory() as folder:
        for hidden in hiddens:
            for setting in SETTINGS:
                for row in measure(hidden, setting, audio, seconds, repeats, Path(folder), args):
                    sdr_db = sdr.get((setting.name, row.precision))
                    print(format_row(hidden, setting, row, sdr_db), flush=True)
                    if hidden == 256:
                        verdicts.append((setting, row))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    offline_f32 = {s.name: row.offline for s, row in verdicts if row.precision == "float32"}
    for setting, row in verdicts:
        print(f"  {setting.name} {row.precision}: {verdict(setting, row, offline_f32)}")


def verdict(setting: Setting, row: Row, offline_f32: dict[str, tuple[float, float]]) -> str:
    """The issue's goals for one row, met or not, with the figures they rest on."""
    stats, goal = row.stats, GOALS.get(setting.name)
    words = f"{1000 * row.latency / RATE:.1f} ms, stream_rtf {stats.stream_rtf:.3f}"
    if goal:
        words += f" <= {goal}: {'met' if stats.stream_rtf <= goal else 'not met'}"
    if setting.block_hops != 2:
        return words
    ratio = row.cost_over_offline
    words += (
        f"; streaming {ratio:.2f}x offline ({row.precision}) <= {MAX_COST_OVER_OFFLINE}: "
        f"{'met' if ratio <= MAX_COST_OVER_OFFLINE else 'not met'} (CPU time: "
        f"{stats.stream_cpu_rtf / row.offline[1]:.2f}x)"
    )
    if row.precision != "float32":
        words += f", {stats.stream_rtf / offline_f32[setting.name][0]:.2f}x offline float32"
    return words


def measure(
    hidden: int,
    setting: Setting,
    audio: torch.Tensor,
    seconds: float,
    repeats: int,
    folder: Path,
    args: argparse.Namespace,
) -> list[Row]:
    """The float32 and int8 rows of one setting, every timing repeated and interleaved."""
    models = untrained_models(hidden, setting.nfft)
    stft = (RATE, setting.nfft, setting.nhop)
    streams = {p: StreamingSeparator(models, *stft, setting.block_hops, p) for p in PRECISIONS}
    offline = {
        "float32": Separator(models, *stft, 2, niter=0),
        "int8": Separator({t: quantize(m) for t, m in models.items()}, *stft, 2, niter=0),
    }
    exported = None if args.no_onnx else onnx_separator(models, setting, folder)
    with torch.inference_mode():  # warm-up: first-call costs
        for precision in PRECISIONS:
            offline[precision].separate(audio[:, :RATE], RATE, False)
            streams[precision].offline(audio[:, :RATE])
    runs = {p: {"stream": [], "offline": [], "one_pass": []} for p in PRECISIONS}
    onnx_runs = []
    for repeat in range(repeats):
        for precision in PRECISIONS:
            run = runs[precision]
            run["stream"].append(measure_stream(streams[precision], seconds, seed=repeat))
            run["offline"].append(
                offline_rtf(lambda a, p=precision: offline[p].separate(a, RATE, False), audio)
            )
            run["one_pass"].append(offline_rtf(streams[precision].offline, audio)[0])
        if exported is not None:
            onnx_runs.append(measure_stream(exported, seconds, seed=repeat).stream_rtf)
    latency = impulse_latency(setting.nfft, setting.nhop, setting.block_hops, RATE)
    agreement = int8_agreement(streams, audio)
    return [
        Row(
            precision,
            latency,
            streams[precision].step.weight_bytes,
            min(runs[precision]["stream"], key=lambda s: s.stream_rtf),
            (min(onnx_runs) if onnx_runs else None) if precision == "float32" else None,
            min(runs[precision]["offline"]),  # the fastest wall clock, with its CPU time
            min(runs[precision]["one_pass"]),
            None if precision == "float32" else agreement,
        )
        for precision in PRECISIONS
    ]


def int8_agreement(streams: dict[str, StreamingSeparator], audio: torch.Tensor) -> float:
    """SDR (dB) of the int8 stream's estimates against the float32 stream's, same audio."""
    estimates = {p: streams[p].separate(audio, RATE) for p in PRECISIONS}
    stacked = {p: torch.stack(list(estimates[p].values())) for p in PRECISIONS}
    return global_sdr(stacked["float32"], stacked["int8"])


def format_row(hidden: int, setting: Setting, row: Row, sdr: float | None) -> str:
    """One table line."""
    stats, dash = row.stats, "-"
    block = f"{setting.block_hops} ({stats.block_ms:.1f} ms)"
    weights = f"{row.weight_bytes / 1e6:.1f}MB {row.precision}"
    return (
        f"{hidden:>6} {setting.name:>9} {block:>13} {1000 * row.latency / RATE:>10.1f} "
        f"{weights:>13}  {stats.stream_rtf:>10.3f} {stats.stream_cpu_rtf:>6.3f} "
        f"{stats.worst_block_ratio:>9.2f} "
        f"{dash if row.onnx_rtf is None else f'{row.onnx_rtf:.3f}':>8}  "
        f"{row.offline[0]:>7.3f} {row.offline[1]:>6.3f} {row.one_pass:>8.3f} "
        f"{row.cost_over_offline:>13.2f}x "
        f"{dash if row.agreement_db is None else f'{row.agreement_db:.1f}':>11} "
        f"{dash if sdr is None else f'{sdr:.2f}':>7}"
    )


if __name__ == "__main__":
    main()
