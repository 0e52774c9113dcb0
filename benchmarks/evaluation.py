"""BSS Eval v4 time, memory and agreement: museval against unmixlab.bsseval (issue 25).

Scores the same tracks (4 sources, stereo, 44.1 kHz: synthetic stems from ``unmixlab.synth``,
looped to length; estimates that leak the other stems and add noise, float32) with
``museval.evaluate`` and ``unmixlab.bsseval.evaluate`` (1 s windows), each in a fresh process,
on one thread and on all cores. Prints CPU and wall seconds, the speed-up (CPU time), the peak
memory the scoring added to the process (its inputs already loaded), and the largest
per-window and per-median differences.

    python benchmarks/evaluation.py --quick                 # a 10 s track
    python benchmarks/evaluation.py                         # 30 s and 4 min, 1 thread and all
    python benchmarks/evaluation.py --seconds 240 --threads 1
    python benchmarks/evaluation.py --device cuda           # adds unmixlab's GPU time
"""

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from unmixlab.render import markdown_table

RATE = 44100
STEMS = ("drums", "bass", "other", "vocals")
METRICS = ("SDR", "ISR", "SIR", "SAR")


def make_track(folder: Path, seconds: float) -> tuple[Path, Path]:
    """References and estimates of ``seconds``, saved as ``.npy`` ``(4, samples, 2)`` float32."""
    from unmixlab.synth import synthesize

    root = folder / "musdb"
    if not root.exists():
        synthesize(root, tracks=1, seconds=30.0, seed=0, sample_rate=RATE, test_tracks=1)
    songs = [
        np.stack([sf.read(track / f"{stem}.wav", dtype="float32")[0] for stem in STEMS])
        for track in sorted(root.glob("*/*"))
    ]
    length = round(seconds * RATE)
    references = np.concatenate(songs * (1 + length // sum(s.shape[1] for s in songs)), axis=1)
    references = np.ascontiguousarray(references[:, :length])
    rng = np.random.default_rng(0)
    leak = np.full((4, 4), 0.08) + 0.7 * np.eye(4)
    estimates = np.einsum("ij,jnc->inc", leak, references)
    estimates += 0.1 * references.std() * rng.standard_normal(references.shape, dtype=np.float32)
    paths = folder / f"references-{seconds:g}.npy", folder / f"estimates-{seconds:g}.npy"
    np.save(paths[0], references)
    np.save(paths[1], estimates.astype(np.float32))
    return paths


def score(scorer: str, paths: tuple[Path, Path], threads: int, device: str, out: Path) -> dict:
    """Score in this (fresh) process; save the metrics to ``out``; return times and memory."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    references, estimates = np.load(paths[0]), np.load(paths[1])
    if scorer == "museval":
        import museval

        run = lambda: museval.evaluate(references, estimates, win=RATE, hop=RATE)  # noqa: E731
    else:
        from unmixlab import bsseval

        run = lambda: bsseval.evaluate(references, estimates, RATE, RATE, device=device)  # noqa: E731
        if device != "cpu":  # CUDA's start-up is not the scorer's time
            bsseval.evaluate(references[:, :RATE], estimates[:, :RATE], device=device)
    loaded = _rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    metrics = run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    np.save(out, np.stack(metrics))
    peak = _peak_rss_mb()
    return {"cpu": cpu, "wall": wall, "added_mb": peak - loaded, "peak_mb": peak}


def _rss_mb() -> float:
    """Resident memory of this process now, MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (``VmHWM``).

    Not ``ru_maxrss``: a spawned process keeps the ``ru_maxrss`` of the parent it was forked
    from (here, the one that made the tracks), while ``VmHWM`` starts anew at ``exec``.
    """
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def in_fresh_process(*args) -> dict:
    """:func:`score` in a new process: its own peak memory, no warm caches."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(score, args)


def differences(museval_out: Path, unmixlab_out: Path) -> tuple[float, float, int]:
    """Largest per-window and per-median |difference| (dB), and windows NaN in one only."""
    want, got = np.load(museval_out), np.load(unmixlab_out)  # (metric, source, window)
    finite = np.isfinite(want)
    window = float(np.max(np.abs(got - want)[finite], initial=0.0))
    medians = np.abs(np.nanmedian(got, axis=-1) - np.nanmedian(want, axis=-1))
    return window, float(np.nanmax(medians)), int(np.sum(np.isnan(got) != np.isnan(want)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 10 s track")
    parser.add_argument("--seconds", type=float, nargs="+", help="track lengths [30 240]")
    parser.add_argument("--threads", nargs="+", help="thread counts, 'all' for every core [1 all]")
    parser.add_argument("--device", default="cpu", help="also time unmixlab on this device")
    args = parser.parse_args()
    lengths = args.seconds or ([10.0] if args.quick else [30.0, 240.0])
    cores = os.cpu_count() or 1
    thread_counts = [cores if t == "all" else int(t) for t in (args.threads or ["1", "all"])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seconds in lengths:
            paths = make_track(folder, seconds)
            for threads in dict.fromkeys(thread_counts):
                out = {name: folder / f"{name}-{seconds:g}-{threads}.npy" for name in ("m", "u")}
                reference = in_fresh_process("museval", paths, threads, "cpu", out["m"])
                ours = in_fresh_process("unmixlab", paths, threads, "cpu", out["u"])
                window, median, nan = differences(out["m"], out["u"])
                rows.append(
                    [
                        f"{seconds:g} s", str(threads), "cpu",
                        f"{reference['cpu']:.1f} / {reference['wall']:.1f}",
                        f"{ours['cpu']:.2f} / {ours['wall']:.2f}",
                        f"{reference['cpu'] / ours['cpu']:.1f}x",
                        f"{reference['added_mb']:.0f}", f"{ours['added_mb']:.0f}",
                        f"{window:.1e}", f"{median:.1e}", str(nan),
                    ]
                )  # fmt: skip
                print(rows[-1], flush=True)
            if args.device != "cpu":
                out_gpu = folder / f"g-{seconds:g}.npy"
                gpu = in_fresh_process("unmixlab", paths, cores, args.device, out_gpu)
                window, median, nan = differences(out["m"], out_gpu)
                rows.append(
                    [
                        f"{seconds:g} s", str(cores), args.device, "",
                        f"{gpu['cpu']:.2f} / {gpu['wall']:.2f}", "", "", f"{gpu['added_mb']:.0f}",
                        f"{window:.1e}", f"{median:.1e}", str(nan),
                    ]
                )  # fmt: skip
    header = [
        "track", "threads", "device", "museval s (cpu / wall)", "unmixlab s (cpu / wall)",
        "speed-up (cpu)", "museval MB", "unmixlab MB", "max |Δ| window dB", "max |Δ| median dB",
        "NaN differ",
    ]  # fmt: skip
    print(markdown_table(header, rows))
    print(
        f"4 sources, stereo, {RATE} Hz, 1 s windows; {cores} cores; MB: peak memory the scoring "
        "added to its process (inputs loaded); Δ: unmixlab - museval where museval is finite"
    )


if __name__ == "__main__":
    main()
