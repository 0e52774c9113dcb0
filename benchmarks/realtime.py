"""Real-time factor and latency of streaming separation, beside the offline separators.

One thread (``torch.set_num_threads(1)``), four targets, randomly initialised models (timing
does not depend on the weights; nothing is downloaded). For each hidden size, sample rate and
bandwidth crop it prints:

- streaming (unidirectional, ``StreamingSeparator``) for each block size: real-time factor
  (wall-clock processing seconds per audio second, best of ``--repeats`` runs; ``cpu`` is the
  thread's CPU time, which other processes on a busy machine do not inflate), the slowest
  block in ms and as a fraction of the block's duration, and the algorithmic latency;
- offline on the same audio: ``unmixlab.separator.Separator`` with bidirectional models
  (niter 0 and 1) and with the unidirectional ones (niter 0), and the reference
  ``openunmix.model.Separator`` (niter 0 and 1) when ``openunmix`` is installed.

    python benchmarks/realtime.py            # the full table (a few minutes)
    python benchmarks/realtime.py --quick    # hidden 256, one crop per rate (< 1 min)
"""

import argparse
import os
import time

import torch

from unmixlab.config import TARGETS
from unmixlab.model import ModelConfig, OpenUnmix
from unmixlab.realtime import RealtimeStats, measure_stream
from unmixlab.separator import Separator
from unmixlab.streaming import StreamingSeparator
from unmixlab.transforms import bandwidth_to_max_bin

# sample rate -> (nfft, nhop, bandwidth crops in Hz; the last is the full band)
RATES = {44100: (4096, 1024, (8000, 16000, 22050)), 16000: (1024, 256, (4000, 8000))}
QUICK_RATES = {44100: (4096, 1024, (16000,)), 16000: (1024, 256, (8000,))}
BLOCK_HOPS = (1, 2, 4, 8)
# the target for streaming: hidden 256 at 44.1 kHz
TARGET_RTF, TARGET_LATENCY_MS = 0.10, 120.0

HEADER = (
    f"{'hidden':>6} {'rate':>6} {'crop':>6}  {'separator':<28} {'block':>13} {'RTF':>6} "
    f"{'cpu':>6} {'worst ms':>9} {'worst/blk':>9} {'latency ms':>10}"
)


def models(hidden: int, nfft: int, max_bin: int, unidirectional: bool) -> dict[str, OpenUnmix]:
    config = ModelConfig(
        nb_bins=nfft // 2 + 1,
        nb_channels=2,
        hidden_size=hidden,
        unidirectional=unidirectional,
        max_bin=max_bin,
    )
    built = {target: OpenUnmix(config) for target in TARGETS}
    for model in built.values():
        model.freeze()
    return built


def reference_separator(
    hidden: int, rate: int, nfft: int, nhop: int, max_bin: int, niter: int
) -> torch.nn.Module | None:
    """The reference ``openunmix.model.Separator``, or None when openunmix is missing."""
    try:
        from openunmix.model import OpenUnmix as ReferenceUnmix
        from openunmix.model import Separator as ReferenceSeparator
    except ImportError:
        return None
    targets = {}
    for target in TARGETS:
        model = ReferenceUnmix(
            nb_bins=nfft // 2 + 1, nb_channels=2, hidden_size=hidden, max_bin=max_bin
        )
        model.freeze()
        targets[target] = model
    separator = ReferenceSeparator(
        targets, niter=niter, sample_rate=rate, n_fft=nfft, n_hop=nhop, nb_channels=2
    )
    return separator.eval()


def time_offline(separate, audio: torch.Tensor, rate: int) -> float:
    """Real-time factor of one offline call on ``audio`` (after a 1 s warm-up)."""
    with torch.inference_mode():
        separate(audio[:, :rate])
        start = time.perf_counter()
        separate(audio)
        return (time.perf_counter() - start) * rate / audio.shape[-1]


def stream_row(prefix: str, hops: int, stats: RealtimeStats) -> str:
    block = f"{hops} ({stats.block_ms:.1f} ms)"
    return (
        f"{prefix}  {'streaming (uni, no Wiener)':<28} {block:>13} {stats.rtf:>6.3f} "
        f"{stats.cpu_rtf:>6.3f} {stats.worst_block_ms:>9.1f} "
        f"{stats.worst_block_ratio:>9.2f} {stats.latency_ms:>10.1f}"
    )


def offline_row(prefix: str, name: str, rtf: float) -> str:
    dash = "-"
    return (
        f"{prefix}  {name:<28} {'whole song':>13} {rtf:>6.3f} {dash:>6} {dash:>9} "
        f"{dash:>9} {'offline':>10}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hidden 256, one crop per rate")
    parser.add_argument("--seconds", type=float, help="audio per measurement [6; quick 4]")
    parser.add_argument("--repeats", type=int, help="streaming runs, best kept [3; quick 2]")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 6.0)
    repeats = args.repeats or (2 if args.quick else 3)
    hiddens, rates = ((256,), QUICK_RATES) if args.quick else ((256, 512), RATES)

    torch.set_num_threads(1)
    print(
        f"one thread, {len(TARGETS)} targets, stereo, random-init models, {seconds:g} s of "
        f"audio per measurement, streaming best of {repeats}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(HEADER)
    print("-" * len(HEADER))
    verdicts = []
    generator = torch.Generator().manual_seed(0)
    for hidden in hiddens:
        for rate, (nfft, nhop, crops) in rates.items():
            audio = 0.1 * torch.randn(2, int(seconds * rate), generator=generator)
            for crop in crops:
                max_bin = bandwidth_to_max_bin(rate, nfft, crop)
                prefix = f"{hidden:>6} {rate:>6} {crop:>6}"
                unidirectional = models(hidden, nfft, max_bin, unidirectional=True)
                for hops in BLOCK_HOPS:
                    separator = StreamingSeparator(unidirectional, rate, nfft, nhop, hops)
                    stats = min(
                        (measure_stream(separator, seconds, seed=i) for i in range(repeats)),
                        key=lambda s: s.rtf,
                    )
                    print(stream_row(prefix, hops, stats), flush=True)
                    if hidden == 256 and rate == 44100:
                        verdicts.append((crop, hops, stats))
                offline = [
                    ("Separator uni niter 0", unidirectional, 0),
                    ("Separator bi niter 0", models(hidden, nfft, max_bin, False), 0),
                ]
                offline.append(("Separator bi niter 1", offline[1][1], 1))
                for name, targets, niter in offline:
                    separator = Separator(targets, rate, nfft, nhop, 2, niter=niter)
                    rtf = time_offline(
                        lambda a, s=separator, r=rate: s.separate(a, r, False), audio, rate
                    )
                    print(offline_row(prefix, name, rtf), flush=True)
                for niter in (0, 1):
                    reference = reference_separator(hidden, rate, nfft, nhop, max_bin, niter)
                    if reference is None:
                        continue
                    rtf = time_offline(lambda a, r=reference: r(a[None]), audio, rate)
                    print(offline_row(prefix, f"openunmix bi niter {niter}", rtf), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(
        f"target (hidden 256, 44.1 kHz, one thread): RTF <= {TARGET_RTF}, latency <= "
        f"{TARGET_LATENCY_MS:g} ms, no block slower than its duration"
    )
    for crop, hops, stats in verdicts:
        bounded = stats.latency_ms <= TARGET_LATENCY_MS and stats.worst_block_ratio < 1
        wall = "met" if bounded and stats.rtf <= TARGET_RTF else "not met"
        cpu = "met" if bounded and stats.cpu_rtf <= TARGET_RTF else "not met"
        print(
            f"  crop {crop} Hz, {hops} hop(s): RTF {stats.rtf:.3f} (CPU {stats.cpu_rtf:.3f}), "
            f"latency {stats.latency_ms:.1f} ms, worst block {stats.worst_block_ratio:.2f} of "
            f"its duration -> wall clock: {wall}, CPU time: {cpu}"
        )


if __name__ == "__main__":
    main()
