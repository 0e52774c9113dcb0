"""The quality cost of low latency: SDR of causal 4096 / 1024 / 512-point models and the
bidirectional model, trained on the same data with the same seeds and epochs (issue 18, H2).

Synthesises a 44.1 kHz MUSDB18-HQ-format set (unless ``--root``), trains the vocals model of
every setting (``tradeoff_runs.SETTINGS``) with every seed, scores it with museval
(niter 0; int8 settings quantize the float32 setting's models), measures each causal
setting's latency (impulses) and ``stream_rtf`` (hidden 256,
four targets, one thread, random weights: the cost of the full-size model), then prints the
table and writes ``OUT/tradeoff.{json,md}`` and ``OUT/pareto.png``.

    python benchmarks/realtime_quality.py --quick     # hidden 32, 2 epochs, 2 seeds, tiny data
    python benchmarks/realtime_quality.py --root /data/musdb18-hq --hidden 256 --epochs 100
"""

import argparse
import os
from pathlib import Path

import torch
from tradeoff_runs import SETTINGS, train_and_score

from unmixlab.config import TrainConfig
from unmixlab.realtime import impulse_latency, measure_stream, torch_threads, untrained_models
from unmixlab.streaming import StreamingSeparator
from unmixlab.study.tradeoff import Setting, tradeoff_table, write_tradeoff
from unmixlab.synth import synthesize

RATE = 44100  # the synthetic tracks' and the models' sample rate


def measure(setting: Setting, seconds: float) -> tuple[float, float, float]:
    """Latency by impulses (ms), ``stream_rtf`` and its CPU time, full-size causal model."""
    latency = impulse_latency(setting.nfft, setting.nhop, setting.block_hops, RATE)
    separator = StreamingSeparator(
        untrained_models(256, setting.nfft, RATE),
        RATE,
        setting.nfft,
        setting.nhop,
        setting.block_hops,
        setting.precision,
    )
    with torch_threads(1):
        runs = [measure_stream(separator, seconds, seed=i) for i in range(2)]
    fastest = min(runs, key=lambda stats: stats.stream_rtf)
    return 1000 * latency / RATE, fastest.stream_rtf, fastest.stream_cpu_rtf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, hidden 32, 2 epochs")
    parser.add_argument("--out", type=Path, default=Path("runs/realtime-tradeoff"))
    parser.add_argument("--root", type=Path, help="MUSDB18-HQ folder [synthesised into OUT]")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per setting [2]")
    parser.add_argument("--epochs", type=int, help="epochs per training [quick 2; 20]")
    parser.add_argument("--hidden", type=int, help="hidden size trained [quick 32; 128]")
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 20)
    hidden = args.hidden or (32 if args.quick else 128)
    root = args.root
    if root is None:
        root = args.out / "data"
        if not root.exists():
            tracks, seconds = (4, 8.0) if args.quick else (12, 20.0)
            synthesize(
                root, tracks=tracks, seconds=seconds, seed=0, sample_rate=RATE, test_tracks=2
            )
    torch.set_num_threads(1)
    base = TrainConfig(
        root=root,
        is_wav=True,
        target="vocals",
        epochs=epochs,
        batch_size=4,
        samples_per_track=8 if args.quick else 32,
        seq_dur=1.0 if args.quick else 3.0,
        hidden_size=hidden,
        sample_rate=RATE,
        bandwidth=16000,
        nb_workers=0,
        cache_dir=args.out / "cache",
        patience=epochs,
    )
    print(
        f"vocals, {hidden} hidden, {epochs} epochs, seeds {list(range(args.seeds))}, data {root}; "
        f"one thread; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    points = train_and_score(
        base,
        SETTINGS,
        range(args.seeds),
        args.out,
        lambda setting: measure(setting, 4.0),
    )
    notes = (
        f"SDR: vocals, museval median of medians over {len(list((root / 'test').iterdir()))} "
        f"test tracks, niter 0, after {epochs} epochs at hidden {hidden} (same data, seeds and "
        f"epochs for every setting). stream_rtf: hidden 256, four targets, one thread, "
        f"fastest of 2 streams of 4 s (wall clock; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs at the end); latency measured with impulses."
    )
    write_tradeoff(points, args.out, notes)
    print(tradeoff_table(points))
    print(notes)
    print(f"written: {args.out}/tradeoff.md, tradeoff.json, pareto.png")


if __name__ == "__main__":
    main()
