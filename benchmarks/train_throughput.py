"""Training throughput: unmixlab with and without the decoded cache vs the reference Open-Unmix.

    python benchmarks/train_throughput.py ROOT [--batch-size 8 --hidden-size 256 ...] [--memory]

ROOT is a MUSDB18 folder (``.stem.mp4`` or HQ wav, detected), e.g. one made by
``unmixlab data synth ROOT --tracks 6 --seconds 20``. Every variant trains the same
configuration on ROOT/train (random chunks, random track mix, gain and channel-swap
augmentation, MSE on STFT magnitudes, Adam) and is timed the same way, step by step, the
variants taking turns so that all see the same load of a shared machine (one after another
with ``--nb-workers`` > 0, whose loader processes would prefetch while others run):

- load: time waiting on the data loader's iterator for the next batch;
- compute: forward (STFT + model) + backward + optimizer step.

Variants: ``openunmix`` 1.3.0's MUSDBDataset + OpenUnmix (when installed; it reads 44.1 kHz
only), unmixlab decoding every chunk through ffmpeg (no cache), unmixlab reading the
decoded cache, and the cache at a lower sample rate (``--low-rate``). The one-off cache
build times are measured on a fresh cache folder. ``--memory`` prepares a small and a 4x
larger synthetic set, trains on each in a fresh process and prints that process's resident
memory after each epoch: it must not grow with the data set.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from unmixlab.config import TrainConfig
from unmixlab.data.cache import build_cache
from unmixlab.data.datasets import CachedReader, DecodingReader, TrainingChunks
from unmixlab.data.tracks import discover
from unmixlab.model import OpenUnmix
from unmixlab.transforms import Spectrogram


@dataclass
class Timing:
    """Per-step seconds of one variant (warm-up steps excluded); figures are medians.

    Medians keep a step slowed by another process on a shared machine from skewing a row.
    """

    name: str
    batch_size: int
    load: list[float]
    compute: list[float]

    @property
    def step(self) -> float:
        """Median seconds per step (load + compute)."""
        return statistics.median(a + b for a, b in zip(self.load, self.compute, strict=True))

    @property
    def samples_per_second(self) -> float:
        """Training items per second at the median step."""
        return self.batch_size / self.step

    @property
    def best(self) -> tuple[float, float]:
        """``(samples per second, load share)`` of the fastest step: the least disturbed."""
        load, compute = min(zip(self.load, self.compute, strict=True), key=sum)
        return self.batch_size / (load + compute), load / (load + compute)

    @property
    def load_share(self) -> float:
        """Median fraction of a step spent waiting for data."""
        return statistics.median(a / (a + b) for a, b in zip(self.load, self.compute, strict=True))


class Variant:
    """One training set-up (data set, model, encoder) stepped one batch at a time."""

    def __init__(
        self,
        name: str,
        dataset: Dataset,
        model: nn.Module,
        encoder: nn.Module,
        args: argparse.Namespace,
    ):
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.nb_workers,
            generator=torch.Generator().manual_seed(0),
        )
        self.batches = iter(loader)
        self.model, self.encoder = model.train(), encoder
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
        self.timing = Timing(name, args.batch_size, [], [])

    def step(self, timed: bool) -> None:
        """Load one batch and train on it; record both times if ``timed``."""
        start = time.perf_counter()
        mixture, target = next(self.batches)
        loaded = time.perf_counter()
        self.optimizer.zero_grad()
        estimate = self.model(self.encoder(mixture))
        loss = nn.functional.mse_loss(estimate, self.encoder(target))
        loss.backward()
        self.optimizer.step()
        done = time.perf_counter()
        if timed:
            self.timing.load.append(loaded - start)
            self.timing.compute.append(done - loaded)
        print(
            f"  {self.timing.name}: load {loaded - start:.3f} s, compute {done - loaded:.3f} s",
            file=sys.stderr,
        )


def interleaved(variants: list[Variant | None], args: argparse.Namespace) -> list[Timing]:
    """Step every variant in turn, so that all see the same (shared) machine load."""
    if None in variants:
        print("openunmix is not installed: no reference timing")
        variants = [variant for variant in variants if variant is not None]
    for step in range(args.warmup + args.steps):
        for variant in variants:
            variant.step(timed=step >= args.warmup)
    return [variant.timing for variant in variants]


def config_for(args: argparse.Namespace, sample_rate: int) -> TrainConfig:
    """The unmixlab configuration of the benchmark at ``sample_rate``."""
    return TrainConfig(
        root=args.root,
        is_wav=args.is_wav,
        batch_size=args.batch_size,
        hidden_size=args.hidden_size,
        seq_dur=args.seq_dur,
        samples_per_track=64,
        random_track_mix=True,
        nb_channels=2,
        sample_rate=sample_rate,
        bandwidth=min(16000.0, sample_rate / 2),
        nb_workers=args.nb_workers,
    )


def unmixlab_variant(name: str, reader: object, config: TrainConfig, args) -> Variant:
    """Unmixlab's TrainingChunks over ``reader`` with unmixlab's model."""
    tracks = discover(config.data.root, config.data.is_wav, "train")
    dataset = TrainingChunks(
        reader, tracks, "vocals", config.optim.seq_dur, 64, 0, random_track_mix=True, augment=True
    )
    model = OpenUnmix(config.architecture())
    encoder = Spectrogram(config.model.nfft, config.model.nhop, mono=config.data.nb_channels == 1)
    return Variant(name, dataset, model, encoder, args)


def reference_variant(args: argparse.Namespace) -> Variant | None:
    """Openunmix 1.3.0's MUSDBDataset and model, as its ``train.py`` sets them up."""
    try:
        from openunmix import data as reference_data
        from openunmix import model as reference_model
        from openunmix import transforms as reference_transforms
    except ImportError:
        return None
    config = config_for(args, 44100)
    dataset = reference_data.MUSDBDataset(
        target="vocals",
        root=str(args.root),
        is_wav=args.is_wav,
        subsets="train",
        split="train",
        seq_duration=args.seq_dur,
        samples_per_track=64,
        source_augmentations=reference_data.aug_from_str(["gain", "channelswap"]),
        random_track_mix=True,
        seed=0,
    )
    stft, _ = reference_transforms.make_filterbanks(
        n_fft=config.model.nfft, n_hop=config.model.nhop, sample_rate=44100.0
    )
    encoder = nn.Sequential(stft, reference_model.ComplexNorm(mono=False))
    model = reference_model.OpenUnmix(
        nb_bins=config.model.nfft // 2 + 1,
        nb_channels=2,
        hidden_size=args.hidden_size,
        max_bin=config.max_bin,
    )
    return Variant("openunmix 1.3.0", dataset, model, encoder, args)


def timed_build(config: TrainConfig, cache_dir: Path) -> tuple[CachedReader, float]:
    """Build the cache of ``config`` into a fresh ``cache_dir``; return it and its build time."""
    data = config.data
    tracks = discover(data.root, data.is_wav, "train")
    start = time.perf_counter()
    cache = build_cache(tracks, cache_dir, data.sample_rate, data.nb_channels)
    return CachedReader(cache), time.perf_counter() - start


def print_table(timings: list[Timing], reference: Timing | None) -> None:
    """One row per variant: medians, then samples/s, load share, speed-up of the fastest step."""
    print(
        f"{'variant':<31} {'samples/s':>9} {'step s':>7} {'load s':>7} {'compute s':>9} "
        f"{'load %':>6} {'speed-up':>8} | {'best: samples/s':>15} {'load %':>6} {'speed-up':>8}"
    )
    for t in timings:
        best_rate, best_share = t.best
        speedup = best_speedup = "-"
        if reference is not None:
            speedup = f"{t.samples_per_second / reference.samples_per_second:.1f}x"
            best_speedup = f"{best_rate / reference.best[0]:.1f}x"
        print(
            f"{t.name:<31} {t.samples_per_second:>9.2f} {t.step:>7.3f} "
            f"{statistics.median(t.load):>7.3f} {statistics.median(t.compute):>9.3f} "
            f"{100 * t.load_share:>6.1f} {speedup:>8} | {best_rate:>15.2f} "
            f"{100 * best_share:>6.1f} {best_speedup:>8}"
        )


def throughput(args: argparse.Namespace) -> None:
    """Run and print the throughput comparison."""
    low = args.low_rate
    print(
        f"# {args.root}: {len(discover(args.root, args.is_wav, 'train'))} train tracks "
        f"({'wav' if args.is_wav else 'stems .mp4'}); batch {args.batch_size}, hidden "
        f"{args.hidden_size}, {args.seq_dur:g} s chunks, nb_workers {args.nb_workers}; "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
        f"{args.steps} timed steps after {args.warmup} warm-up; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="unmixlab-bench-") as scratch:
        native, low_config = config_for(args, 44100), config_for(args, low)
        cached, build_native = timed_build(native, Path(scratch) / "cache")
        cached_low, build_low = timed_build(low_config, Path(scratch) / "cache")
        print(
            f"cache build (one-off, {cached.cache.folder.parent}): {build_native:.2f} s at "
            f"44100 Hz, {build_low:.2f} s at {low} Hz"
        )
        makers: list[tuple[str, Callable[[], Variant | None]]] = [
            ("reference", lambda: reference_variant(args)),
            (
                "decoding",
                lambda: unmixlab_variant(
                    "unmixlab, decoding (no cache)",
                    DecodingReader(discover(args.root, args.is_wav, "train"), 44100, 2),
                    native,
                    args,
                ),
            ),
            ("cache", lambda: unmixlab_variant("unmixlab, cache", cached, native, args)),
            (
                "cache-low",
                lambda: unmixlab_variant(
                    f"unmixlab, cache, {low} Hz", cached_low, low_config, args
                ),
            ),
        ]
        makers = [(key, make) for key, make in makers if key not in args.skip]
        if args.nb_workers:  # loader processes of waiting variants would prefetch: one by one
            timings = [t for _, make in makers for t in interleaved([make()], args)]
        else:
            timings = interleaved([make() for _, make in makers], args)
    reference = next((t for t in timings if t.name.startswith("openunmix")), None)
    print_table(timings, reference)
    print(
        "(medians over the timed steps; 'best': the fastest step, least disturbed by other "
        f"processes; load average now {os.getloadavg()[0]:.1f})"
    )


class RssRecorder:
    """Training callback: resident memory (MiB) after set-up and after each epoch."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.rss: list[float] = []

    def _record(self) -> None:
        self.rss.append(self.process.memory_info().rss / 2**20)

    def on_train_start(self, trainer: object) -> None:
        """After set-up and input statistics."""
        self._record()

    def on_epoch_end(self, trainer: object, record: object) -> None:
        """After each epoch."""
        self._record()

    def on_train_end(self, trainer: object, result: object) -> None:
        """Nothing to do."""


def memory_config(root: Path, work: Path, args: argparse.Namespace) -> TrainConfig:
    """A small model trained on every track of ``root``, chunks as in the comparison."""
    return TrainConfig(
        root=root,
        is_wav=True,
        epochs=args.memory_epochs,
        batch_size=args.batch_size,
        seq_dur=args.seq_dur,
        samples_per_track=16,
        random_track_mix=True,
        hidden_size=16,
        nb_layers=1,
        nb_workers=args.nb_workers,
        output=work / "model",
        cache_dir=work / "cache",
    )


def train_and_measure(root: Path, work: Path, args: argparse.Namespace) -> tuple[list[float], int]:
    """Train on ``root`` in this (fresh) process; RSS per epoch (MiB) and cache bytes."""
    from unmixlab.trainer import train

    config = memory_config(root, work, args)
    torch.set_num_threads(1)  # memory does not depend on it; a busy machine slows 2 threads more
    recorder = RssRecorder()
    try:
        train(config, callbacks=[recorder])
    except Exception as error:  # UnmixlabError does not pickle back to the parent
        raise RuntimeError(str(error)) from None
    size = sum(p.stat().st_size for p in (work / "cache").rglob("*.npy"))
    return recorder.rss, size


def memory(args: argparse.Namespace) -> None:
    """Resident memory of a training process on a small and a 4x larger synthetic set."""
    from unmixlab.prepare import prepare
    from unmixlab.synth import synthesize

    print(
        f"# memory: training processes on {args.memory_tracks} and {4 * args.memory_tracks} "
        f"synthetic tracks of {args.memory_seconds:g} s (44.1 kHz), {args.memory_epochs} epochs"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="unmixlab-mem-") as scratch:
        for tracks in (args.memory_tracks, 4 * args.memory_tracks):
            work = Path(scratch) / f"set{tracks}"
            root = synthesize(
                work / "musdb", tracks=tracks, seconds=args.memory_seconds, test_tracks=1
            )
            prepare(memory_config(root, work, args).data)  # the prepare step, in this process
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                rss, size = pool.submit(train_and_measure, root, work, args).result()
            rows.append((tracks, size, rss))
    for tracks, size, rss in rows:
        epochs = " ".join(f"{value:.0f}" for value in rss[1:])
        print(
            f"{tracks:>3} tracks, cache {size / 2**20:7.1f} MiB: RSS after set-up "
            f"{rss[0]:.0f} MiB, "
            f"after each epoch {epochs} MiB (growth {rss[-1] - rss[0]:+.0f} MiB)"
        )
    (small_tracks, small_size, small), (_, large_size, large) = rows
    print(
        f"4x the data ({(large_size - small_size) / 2**20:.0f} MiB more cache): final RSS "
        f"{large[-1] - small[-1]:+.0f} MiB"
    )


def parse(argv: Iterable[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="MUSDB18 folder (stems .mp4 or HQ wav)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--seq-dur", type=float, default=6.0)
    parser.add_argument("--low-rate", type=int, default=16000, help="the lower sample rate")
    parser.add_argument("--nb-workers", type=int, default=0, help="data-loader processes")
    parser.add_argument("--threads", type=int, help="torch threads [default: torch's]")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["reference", "decoding", "cache", "cache-low"],
        help="variants to leave out",
    )
    parser.add_argument("--memory", action="store_true", help="also measure resident memory")
    parser.add_argument("--memory-only", action="store_true", help="only measure memory")
    parser.add_argument("--memory-tracks", type=int, default=3, help="small set (at least 2)")
    parser.add_argument("--memory-seconds", type=float, default=20.0)
    parser.add_argument("--memory-epochs", type=int, default=3)
    args = parser.parse_args(argv)
    train = args.root / "train"
    args.is_wav = train.is_dir() and any(p.is_dir() for p in train.iterdir())
    return args


def main() -> None:
    """Entry point."""
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.memory_only:
        throughput(args)
    if args.memory or args.memory_only:
        memory(args)


if __name__ == "__main__":
    main()
