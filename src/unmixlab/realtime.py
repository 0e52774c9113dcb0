"""Real-time figures of streaming separation: real-time factor, worst block, latency.

- real-time factor (``rtf``): wall-clock processing seconds per second of audio (< 1 keeps up);
  ``cpu_rtf`` is the same with this thread's CPU time, which other processes on a busy
  machine do not inflate.
- worst block: the slowest block's processing time, in ms and as a fraction of the block's
  duration (``worst_block_ratio`` < 1: no block ever falls behind).
- ``latency_ms``: the algorithmic latency of :class:`unmixlab.streaming.StreamingSeparator`.
"""

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from unmixlab.streaming import StreamingSeparator, load_streaming_separator


@dataclass(frozen=True)
class RealtimeStats:
    """What streaming a recording block by block measured."""

    rtf: float
    cpu_rtf: float
    latency_ms: float
    block_ms: float
    worst_block_ms: float
    blocks: int

    @property
    def worst_block_ratio(self) -> float:
        """Slowest block's processing time over the block's duration."""
        return self.worst_block_ms / self.block_ms

    def as_dict(self) -> dict[str, float]:
        """All figures, ``worst_block_ratio`` included."""
        return {**asdict(self), "worst_block_ratio": self.worst_block_ratio}

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.blocks} blocks of {self.block_ms:.1f} ms: real-time factor {self.rtf:.3f} "
            f"(CPU {self.cpu_rtf:.3f}), worst block {self.worst_block_ms:.1f} ms "
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
            rtf=sum(block_seconds) / audio_seconds,
            cpu_rtf=cpu_seconds / audio_seconds,
            latency_ms=separator.latency_ms,
            block_ms=separator.block_ms,
            worst_block_ms=1000.0 * max(block_seconds),
            blocks=len(block_seconds),
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


def measure_realtime(
    model_dir: Path,
    block_hops: int = 2,
    seconds: float = 10.0,
    threads: int | None = 1,
    targets: list[str] | None = None,
) -> dict[str, float]:
    """Real-time figures of the unidirectional models in ``model_dir``.

    Args:
        model_dir: reference-layout model folder (``separator.json``, ``<target>.pth``).
        block_hops: hops per block.
        seconds: audio streamed (noise; the cost does not depend on the content).
        threads: torch intra-op threads while measuring (``None``: unchanged).
        targets: targets to stream (default: all in the folder).

    Returns:
        ``rtf``, ``latency_ms``, ``worst_block_ratio``, plus ``cpu_rtf``, ``block_ms``,
        ``worst_block_ms`` and ``blocks``.

    Raises:
        UnmixlabError: the folder is missing or holds a bidirectional model.
    """
    separator = load_streaming_separator(model_dir, targets, block_hops)
    with torch_threads(threads):
        return measure_stream(separator, seconds).as_dict()


def log_realtime_metrics(
    run_id: str, model_dir: Path, block_hops: int = 2, seconds: float = 10.0
) -> dict[str, float]:
    """Measure the models in ``model_dir`` and log ``rtf``, ``latency_ms`` to MLflow run ``run_id``.

    ``worst_block_ratio`` is logged too, and the block size as the tag
    ``realtime_block_hops``, so the tuning pipeline can trade speed and latency against loss.

    Returns:
        the figures of :func:`measure_realtime`.
    """
    from mlflow.tracking import MlflowClient

    from unmixlab.tracking.setup import resolve_tracking_uri

    figures = measure_realtime(model_dir, block_hops=block_hops, seconds=seconds)
    client = MlflowClient(tracking_uri=resolve_tracking_uri())
    for key in ("rtf", "latency_ms", "worst_block_ratio"):
        client.log_metric(run_id, key, figures[key])
    client.set_tag(run_id, "realtime_block_hops", str(block_hops))
    return figures
