"""GPU training throughput: the compute limit beside unmixlab end to end, then the seed study.

    python benchmarks/gpu_train.py                 # full size, on the GPU (device auto)
    python benchmarks/gpu_train.py --quick         # tiny sizes: runs on a CPU in a minute or two

Prints one markdown table (and the hardware it ran on):

1. the compute limit: Open-Unmix (the reference architecture, unmixlab's model) and its STFT
   on a random batch already on the device, forward + backward + Adam step, fp32 and fp16
   autocast, at batch 16 / hidden 512 and batch 8 / hidden 256;
2. unmixlab's ``Trainer`` end to end at the same sizes (synthetic MUSDB18-HQ data, decoded
   cache, ``--workers`` loader processes): samples/s of the last epoch's training pass and
   its share of the fp32 limit;
3. the seed study's configurations (``seed-study`` preset) at full size: 44.1 kHz, bandwidth
   16 kHz, 6 s chunks, on the same synthetic data, each with its wall time (input statistics,
   training, validation and checkpoints), and their total.

It imports from unmixlab only the trainer, its configuration and the synthetic data (torch,
torchaudio, numpy, tqdm, pyyaml, pydantic, soundfile): no MLflow, Prefect, Optuna, musdb or
ffmpeg, so it runs on a bare GPU machine with those few wheels carried along.
"""

import argparse
import contextlib
import importlib.resources
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from unmixlab.config import TrainConfig
from unmixlab.device import device_tags, resolve_device
from unmixlab.model import OpenUnmix
from unmixlab.prepare import PreparedData, prepare
from unmixlab.synth import synthesize
from unmixlab.trainer import Trainer
from unmixlab.transforms import Spectrogram


@dataclass(frozen=True)
class Sizes:
    """The audio and spectrogram sizes of one benchmark mode."""

    sample_rate: int
    bandwidth: float
    nfft: int
    nhop: int
    seq_dur: float
    tracks: int
    seconds: float
    hidden_scale: int  # hidden sizes are divided by it (quick mode)
    samples_per_track: int  # end-to-end rows: chunks per track per epoch


FULL = Sizes(44100, 16000.0, 4096, 1024, 6.0, 24, 30.0, 1, 64)
QUICK = Sizes(16000, 8000.0, 512, 128, 1.0, 3, 4.0, 16, 4)
SIZES = ((16, 512), (8, 256))  # (batch, hidden) of the limit and end-to-end rows


def base_config(sizes: Sizes, root: Path, output: Path, device: str, workers: int) -> TrainConfig:
    """The training settings shared by every row."""
    return TrainConfig(
        root=root,
        is_wav=True,
        sample_rate=sizes.sample_rate,
        bandwidth=sizes.bandwidth,
        nfft=sizes.nfft,
        nhop=sizes.nhop,
        seq_dur=sizes.seq_dur,
        nb_workers=workers,
        device=device,
        output=output,
        seed=42,
    )


def compute_limit(config: TrainConfig, amp: str, steps: int, warmup: int) -> float:
    """Samples/s of model + STFT training steps on one random batch already on the device."""
    device = resolve_device(config.run.device)
    model = OpenUnmix(config.architecture()).to(device).train()
    encoder = Spectrogram(config.model.nfft, config.model.nhop).to(device)
    shape = (config.optim.batch_size, config.data.nb_channels)
    length = int(config.optim.seq_dur * config.data.sample_rate)
    mixture, target = (
        torch.rand(*shape, length, device=device),
        torch.rand(*shape, length, device=device),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            estimate = model(encoder(mixture))
        loss = nn.functional.mse_loss(estimate.float(), encoder(target))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(device)
    return config.optim.batch_size * steps / (time.perf_counter() - start)


def end_to_end(config: TrainConfig, data: PreparedData) -> float:
    """Samples/s of the ``Trainer``'s last epoch (its training pass, loader included)."""
    result = Trainer(config, data).fit()
    return result.history.samples_per_second[-1]


def seed_configurations(quick: bool) -> list[dict]:
    """The ``seed-study`` preset's configurations (scaled down in quick mode)."""
    path = importlib.resources.files("unmixlab") / "presets" / "seed-study.yaml"
    configurations = yaml.safe_load(path.read_text())["study"]["configurations"]
    keys = ("batch_size", "hidden_size", "samples_per_track", "epochs")
    rows = [{"name": c["name"], **{k: c[k] for k in keys}} for c in configurations]
    if quick:
        for row in rows:
            row["hidden_size"] //= QUICK.hidden_scale
            row["samples_per_track"] = max(1, row["samples_per_track"] // 8)
    return rows


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timing on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU is enough)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=4, help="loader processes [4]")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the limit rows")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the end-to-end rows")
    parser.add_argument("--skip-seed", action="store_true", help="leave the seed study out")
    parser.add_argument("--work", type=Path, help="folder for data and models [a temporary one]")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    steps, warmup = (3, 1) if args.quick else (args.steps, args.warmup)
    device = resolve_device(args.device)
    tags = device_tags(device)
    print(" ".join(f"{k}={v}" for k, v in tags.items()), flush=True)

    with tempfile.TemporaryDirectory(dir=args.work) as work:
        work = Path(work)
        start = time.perf_counter()
        root = synthesize(
            work / "data",
            tracks=sizes.tracks,
            seconds=sizes.seconds,
            sample_rate=sizes.sample_rate,
            test_tracks=1,
        )
        print(f"synthetic data: {time.perf_counter() - start:.1f} s", flush=True)
        base = base_config(sizes, root, work / "models", str(device), args.workers)
        data = prepare(base.data)  # the decoded cache, built once for every row

        print_row(("what", "batch / hidden", "samples/s", "% of fp32 limit", "wall s"))
        print("| --- | --- | ---: | ---: | ---: |")
        for batch, hidden in SIZES:
            config = base.updated(batch_size=batch, hidden_size=hidden // sizes.hidden_scale)
            limit = compute_limit(config, "off", steps, warmup)
            size = f"{batch} / {config.model.hidden_size}"
            print_row(("compute limit, fp32", size, f"{limit:.1f}", "100", ""))
            fp16 = compute_limit(config, "fp16", steps, warmup)
            print_row(("compute limit, fp16 autocast", size, f"{fp16:.1f}", "", ""))
            for amp in ("off", "fp16"):
                e2e = config.updated(
                    epochs=args.epochs,
                    samples_per_track=sizes.samples_per_track,
                    amp=amp,
                    output=work / "models" / f"e2e-{batch}-{hidden}-{amp}",
                )
                speed = end_to_end(e2e, data)
                label = f"unmixlab end to end, {args.workers} workers" + (
                    ", fp16" if amp == "fp16" else ""
                )
                print_row((label, size, f"{speed:.1f}", f"{100 * speed / limit:.0f}", ""))

        if not args.skip_seed:
            total = 0.0
            for seed_row in seed_configurations(args.quick):
                name = seed_row.pop("name")
                config = base.updated(**seed_row, output=work / "models" / name)
                start = time.perf_counter()
                Trainer(config, data).fit()
                seconds = time.perf_counter() - start
                total += seconds
                size = f"{config.optim.batch_size} / {config.model.hidden_size}"
                what = f"seed {name}: {config.run.epochs} epoch(s), "
                what += f"{config.optim.samples_per_track} samples/track"
                print_row((what, size, "", "", f"{seconds:.1f}"))
            print_row(("seed configurations, all", "", "", "", f"{total:.1f}"))


def print_row(row: tuple[str, ...]) -> None:
    """Print one row of the markdown table as soon as it is measured."""
    print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
