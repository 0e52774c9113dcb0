"""Real-time figures of streaming separation: real-time factor, worst block, latency.

- streaming real-time factor (``stream_rtf``): wall-clock processing seconds per second of
  audio (< 1 keeps up); ``stream_cpu_rtf`` is the same with this thread's CPU time, which
  other processes on a busy machine do not inflate. (``cpu_rtf`` is the offline separator's,
  :func:`unmixlab.tuning.objective.separator_rtf`.)
- worst block: the slowest block's processing time, in ms and as a fraction of the block's
  duration (``worst_block_ratio`` < 1: no block ever falls behind).
- ``latency_ms``: the algorithmic latency of :class:`unmixlab.streaming.StreamingSeparator`;
  :func:`impulse_latency` measures it with impulses.
"""

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from unmixlab.config import TARGETS
from unmixlab.errors import UnmixlabError
from unmixlab.model import ModelConfig, OpenUnmix
from unmixlab.streaming import StreamingSeparator, load_streaming_separator
from unmixlab.transforms import bandwidth_to_max_bin


@dataclass(frozen=True)
class RealtimeStats:
    """What streaming a recording block by block measured."""

    stream_rtf: float
    stream_cpu_rtf: float
    latency_ms: float
    block_ms: float
    worst_block_ms: float
    blocks: int
    precision: str = "float32"

    @property
    def worst_block_ratio(self) -> float:
        """Slowest block's processing time over the block's duration."""
        return self.worst_block_ms / self.block_ms

    def as_dict(self) -> dict[str, float]:
        """All figures, ``worst_block_ratio`` included."""
        figures = {key: value for key, value in asdict(self).items() if key != "precision"}
        return {**figures, "worst_block_ratio": self.worst_block_ratio}

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.blocks} blocks of {self.block_ms:.1f} ms, {self.precision} weights: "
            f"real-time factor {self.stream_rtf:.3f} (CPU {self.stream_cpu_rtf:.3f}), "
            f"worst block {self.worst_block_ms:.1f} ms "
            f"({self.worst_block_ratio:.2f} of its duration), "
            f"algorithmic latency {self.latency_ms:.1f} ms"
        )

    @classmethod
    def from_blocks(
        cls, separator: StreamingSeparator, block_seconds: list[float], cpu_seconds: float
    ) -> "RealtimeStats":
        """Figures from the per-block wall-clock times of one stream."""
        audio_seconds = len(block_seconds) * separator.block_ms / 1000.0
        return cls(
            stream_rtf=sum(block_seconds) / audio_seconds,
            stream_cpu_rtf=cpu_seconds / audio_seconds,
            latency_ms=separator.latency_ms,
            block_ms=separator.block_ms,
            worst_block_ms=1000.0 * max(block_seconds),
            blocks=len(block_seconds),
            precision=separator.precision,
        )


class MeasuredStream:
    """Streams blocks through a separator, as :meth:`StreamingSeparator.stream`, timing it.

    The separator is warmed up on silence first, as a live application would before opening
    its stream; every block of the stream counts, the end's flush included.

    Args:
        separator: the streaming separator.
        blocks: ``(nb_channels, block_size)`` input chunks (only the last may be shorter).
    """

    def __init__(self, separator: StreamingSeparator, blocks: Iterable[Tensor]):
        self.separator = separator
        self.blocks = blocks
        self.block_seconds: list[float] = []
        self.cpu_seconds = 0.0

    def __iter__(self) -> Iterator[Tensor]:
        """Yield the aligned ``(nb_targets, nb_channels, n)`` estimates."""
        self.separator.warm_up()
        start = time.thread_time()
        try:
            yield from self.separator.stream(self.blocks, self.block_seconds)
        finally:
            self.cpu_seconds = time.thread_time() - start

    def stats(self) -> RealtimeStats:
        """The figures of the blocks streamed so far."""
        return RealtimeStats.from_blocks(self.separator, self.block_seconds, self.cpu_seconds)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` intra-op threads (``None``: leave as is), then restore."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_stream(
    separator: StreamingSeparator, seconds: float = 10.0, seed: int = 0
) -> RealtimeStats:
    """Stream ``seconds`` of noise through ``separator`` as a live input would arrive."""
    generator = torch.Generator().manual_seed(seed)
    length = max(1, round(seconds * separator.sample_rate))
    audio = 0.1 * torch.randn(separator.nb_channels, length, generator=generator)
    measured = MeasuredStream(separator, torch.split(audio, separator.block_size, -1))
    for _ in measured:
        pass
    return measured.stats()


@dataclass(frozen=True)
class RealtimeSettings:
    """How the measure step streams a model: audio length and block size.

    Attributes:
        seconds: audio streamed (noise; the cost does not depend on the content).
        block_hops: hops per block.
        threads: torch intra-op threads while measuring (``None``: unchanged).
    """

    seconds: float = 10.0
    block_hops: int = 2
    threads: int | None = 1


def measure_model(
    model_dir: Path, settings: RealtimeSettings, targets: list[str] | None = None
) -> RealtimeStats:
    """Real-time figures of the unidirectional models in ``model_dir``.

    Args:
        model_dir: reference-layout model folder (``separator.json``, ``<target>.pth``).
        settings: audio length, block size and threads.
        targets: targets to stream (default: all in the folder).

    Raises:
        UnmixlabError: the folder is missing or holds a bidirectional model.
    """
    separator = load_streaming_separator(model_dir, targets, settings.block_hops)
    with torch_threads(settings.threads):
        return measure_stream(separator, settings.seconds)


def measure_realtime(
    model_dir: Path,
    block_hops: int = 2,
    seconds: float = 10.0,
    threads: int | None = 1,
    targets: list[str] | None = None,
) -> dict[str, float]:
    """:func:`measure_model`'s figures as a dict.

    Returns:
        ``stream_rtf``, ``latency_ms``, ``worst_block_ratio``, plus ``stream_cpu_rtf``,
        ``block_ms``, ``worst_block_ms`` and ``blocks``.
    """
    settings = RealtimeSettings(seconds, block_hops, threads)
    return measure_model(model_dir, settings, targets).as_dict()


def untrained_models(
    hidden: int, nfft: int, sample_rate: int = 44100, bandwidth: float = 16000.0
) -> dict[str, OpenUnmix]:
    """Four frozen unidirectional stereo models with random weights, one per target.

    Their real-time cost equals a trained model's of the same shape: what the real-time
    benchmarks stream.
    """
    config = ModelConfig(
        nb_bins=nfft // 2 + 1,
        nb_channels=2,
        hidden_size=hidden,
        unidirectional=True,
        max_bin=bandwidth_to_max_bin(sample_rate, nfft, bandwidth),
    )
    built = {target: OpenUnmix(config) for target in TARGETS}
    for model in built.values():
        model.freeze()
    return built


def pass_through_model(nfft: int) -> OpenUnmix:
    """A mono unidirectional model whose mask is 1 everywhere: its estimate is the mixture."""
    config = ModelConfig(nb_bins=nfft // 2 + 1, nb_channels=1, hidden_size=4, nb_layers=1)
    model = OpenUnmix(config.model_copy(update={"unidirectional": True, "max_bin": 8}))
    with torch.no_grad():
        model.fc3.weight.zero_()  # fc3 -> 0, bn3 (fresh) -> 0, output_mean 1 -> mask 1
    model.freeze()
    return model


def impulse_latency(nfft: int, nhop: int, block_hops: int, sample_rate: int = 44100) -> int:
    """Algorithmic latency measured with impulses, in samples.

    A pass-through separator with this STFT and block is fed one impulse at a time, at each
    hop boundary of a block and one sample either side; the delay of an impulse is the input
    consumed when the block holding its reconstruction leaves, minus its position. The
    longest delay is the latency; :attr:`StreamingSeparator.latency_samples` is its formula.

    Raises:
        UnmixlabError: the impulse does not come back whole (the STFT cannot stream).
    """
    separator = StreamingSeparator(
        {"mixture": pass_through_model(nfft)}, sample_rate, nfft, nhop, block_hops
    )
    size, delays = separator.block_size, []
    end = math.ceil((2 * size + nfft) / size + 2) * size
    for position in {
        2 * size + hop * nhop + d for hop in range(block_hops + 1) for d in (-1, 0, 1)
    }:
        audio = torch.zeros(1, end)
        audio[0, position] = 1.0
        separator.reset()
        for index, block in enumerate(torch.split(audio, size, -1)):
            out = separator.process_block(block)[0, 0]  # (block_size,)
            if out.abs().max() > 0.5:
                if abs(float(out.abs().sum()) - 1.0) > 1e-4:
                    raise UnmixlabError(
                        f"an impulse through nfft {nfft}, hop {nhop} does not come back whole",
                        "Use a hop of at most nfft / 2",
                    )
                delays.append((index + 1) * size - position)
                break
    return max(delays)
