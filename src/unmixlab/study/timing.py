"""The study's measurements beside training: cost per sample, paced streams, baselines.

- :func:`cost_per_sample`: a dedicated timing pass of one configuration's training step
  (forward, backward, Adam step on a spectrogram batch of its shape), warm-up excluded,
  ``repeats`` timed steps, median and spread, wall and process CPU time, the load around it.
- :func:`paced_stream`: a unidirectional model streamed at the pace of live audio for all four
  targets; per-block p50/p99 and the blocks that missed their deadline.
- :func:`offline_rtf`: a bidirectional model's offline cost on the same clip and targets.
- :func:`baseline_sdr`: the mixture as the estimate and the oracle ratio mask, scored by
  museval on the test tracks (what "no quality loss" must be read against).
"""

import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from unmixlab.config import TARGETS, TrainConfig
from unmixlab.hardware import cpu_name
from unmixlab.model import OpenUnmix, parameter_count
from unmixlab.study.measurements import CostMeasurement, PacedStream


def load_average() -> float:
    """The machine's 1-minute load average (0 where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def frames_per_sample(config: TrainConfig) -> int:
    """STFT frames of one training chunk (centred STFT)."""
    length = round(config.optim.seq_dur * config.data.sample_rate)
    return length // config.model.nhop + 1


def cost_per_sample(
    name: str, config: TrainConfig, repeats: int = 5, warmup: int = 2
) -> CostMeasurement:
    """Time ``repeats`` training steps of ``config``'s network after ``warmup`` untimed ones.

    The batch is random spectrogram input of the configuration's shape
    ``(batch, channels, bins, frames)`` (an LSTM's cost does not depend on the values); the
    STFT and data loading are not timed.
    """
    torch.manual_seed(0)
    architecture = config.architecture()
    model = OpenUnmix(architecture)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    shape = (
        config.optim.batch_size,
        config.data.nb_channels,
        architecture.nb_bins,
        frames_per_sample(config),
    )
    x, target = torch.rand(shape), torch.rand(shape)
    before = load_average()
    walls, cpus = [], []
    for step in range(warmup + repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        optimiser.step()
        if step >= warmup:
            walls.append(1000 * (time.perf_counter() - wall) / shape[0])
            cpus.append(1000 * (time.process_time() - cpu) / shape[0])
    parameters = parameter_count(architecture)
    return CostMeasurement(
        configuration=name,
        ms_per_sample=statistics.median(walls),
        cpu_ms_per_sample=statistics.median(cpus),
        low=min(walls),
        high=max(walls),
        repeats=repeats,
        warmup=warmup,
        parameters=parameters,
        work_per_sample=float(parameters * shape[-1]),
        load=(before, load_average()),
    )


def _four_targets(model_dir: Path, target: str) -> dict[str, OpenUnmix]:
    """The trained model loaded once per target: copies stand in for the untrained ones."""
    from unmixlab.model_io import load_target_model

    return {name: load_target_model(model_dir, target) for name in TARGETS}


def paced_stream(
    name: str, model_dir: Path, target: str, block_hops: int, seconds: float
) -> PacedStream:
    """Stream ``seconds`` of noise block by block at the pace of live audio, four targets.

    Each block arrives one block duration after the previous; a block misses its deadline when
    its processing ends after the next one arrives. One torch thread, float32.
    """
    from unmixlab.model_io import read_separator_json
    from unmixlab.realtime import torch_threads
    from unmixlab.streaming import StreamingSeparator

    meta = read_separator_json(model_dir)
    separator = StreamingSeparator(
        _four_targets(model_dir, target), meta["sample_rate"], meta["nfft"], meta["nhop"],
        block_hops, "float32",
    )  # fmt: skip
    audio = 0.1 * torch.randn(separator.nb_channels, round(seconds * separator.sample_rate))
    blocks = list(torch.split(audio, separator.block_size, -1))
    if blocks[-1].shape[-1] < separator.block_size:
        blocks.pop()
    period = separator.block_ms / 1000
    took, missed = [], 0
    with torch_threads(1), torch.inference_mode():
        separator.warm_up()
        start = time.perf_counter()
        for index, block in enumerate(blocks):
            arrival = start + index * period
            delay = arrival - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            begin = time.perf_counter()
            separator.process_block(block)
            end = time.perf_counter()
            took.append(1000 * (end - begin))
            missed += end > arrival + period
    return PacedStream(
        configuration=name,
        targets=TARGETS,
        precision="float32",
        cpu=cpu_name(),
        threads=1,
        block_ms=separator.block_ms,
        latency_ms=separator.latency_ms,
        p50_ms=float(np.percentile(took, 50)),
        p99_ms=float(np.percentile(took, 99)),
        worst_ms=max(took),
        blocks=len(took),
        missed=int(missed),
    )


def offline_rtf(model_dir: Path, target: str, seconds: float) -> float:
    """A bidirectional model's offline compute seconds per audio second, four targets.

    STFT and the four networks over the whole clip at once, one torch thread (the mask and
    inverse STFT are left out, as cheap as the streaming's).
    """
    from unmixlab.model_io import read_separator_json
    from unmixlab.realtime import torch_threads
    from unmixlab.transforms import STFT, magnitude

    meta = read_separator_json(model_dir)
    models = _four_targets(model_dir, target)
    stft = STFT(meta["nfft"], meta["nhop"])
    channels = next(iter(models.values())).config.nb_channels
    audio = 0.1 * torch.randn(1, channels, round(seconds * meta["sample_rate"]))
    with torch_threads(1), torch.inference_mode():
        for model in models.values():  # warm-up
            model(magnitude(stft(audio[..., : meta["nfft"] * 4])))
        begin = time.perf_counter()
        spectrogram = magnitude(stft(audio))
        for model in models.values():
            model(spectrogram)
        return (time.perf_counter() - begin) / seconds


def baseline_sdr(root: Path, is_wav: bool, target: str, nfft: int, nhop: int) -> dict[str, float]:
    """Museval SDR (median over frames, then tracks) of two baselines on the test tracks.

    ``mixture``: the mixture itself as the target's estimate. ``oracle mask``: the mixture
    STFT times the ideal ratio mask ``|S_target| / sum |S_source|`` (an upper bound for a
    mask model at this STFT).
    """
    import museval

    from unmixlab.data.tracks import decode_wav, discover
    from unmixlab.transforms import ISTFT, STFT

    stft, istft = STFT(nfft, nhop), ISTFT(nfft, nhop)
    scores: dict[str, list[float]] = {"mixture": [], "oracle mask": []}
    for track in discover(root, is_wav, "test"):
        stems = {s: decode_wav(track, s, track.rate, track.nb_channels) for s in TARGETS}
        mixture = sum(stems.values())
        spectra = {s: stft(audio[None]) for s, audio in stems.items()}
        mask = spectra[target].abs() / (sum(v.abs() for v in spectra.values()) + 1e-10)
        oracle = istft(mask * stft(mixture[None]), length=mixture.shape[-1])[0]
        reference = stems[target].T.numpy()[None]
        for name, estimate in (("mixture", mixture), ("oracle mask", oracle)):
            sdr, *_ = museval.evaluate(reference, estimate.T.numpy()[None], win=track.rate)
            scores[name].append(float(np.nanmedian(sdr)))
    return {name: float(np.median(values)) for name, values in scores.items() if values}
