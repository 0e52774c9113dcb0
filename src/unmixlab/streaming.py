"""Real-time separation with unidirectional Open-Unmix models, block by block.

Stream conventions (``H`` = ``nhop``, ``P`` = ``nfft - nhop``, ``N`` = ``block_hops * H``):

- Analysis is a *non-centred* STFT with a periodic Hann window: frame ``t`` covers input samples
  ``[(t + 1) * H - nfft, (t + 1) * H)`` (zeros before the start), so it is complete as soon as
  hop ``t`` has arrived. Nothing after that hop is ever needed.
- Each block of ``N`` input samples yields ``block_hops`` frames; all targets' masks come from one
  batched step that carries every target's LSTM state to the next block. Each estimate takes the
  mixture phase (no Wiener filter).
- Synthesis is weighted overlap-add with the same window, divided by the window's squared
  overlap (as ``torch.istft``); a sample is final once no later frame overlaps it.
- Block ``b`` (input samples ``[b * N, (b + 1) * N)``) returns output-stream samples
  ``[b * N, (b + 1) * N)``, and output-stream sample ``k`` estimates input sample ``k - P``.

Algorithmic latency, ``latency_samples = P + N = nfft + (block_hops - 1) * nhop``: the constant
delay between a sound entering and its estimate leaving when computing takes no time (the first
sample of a block waits ``N`` samples for its block, then ``P`` more inside the output stream).
nfft 4096, hop 1024 and 2-hop blocks at 44.1 kHz give 5120 samples = 116.10 ms. A live system
adds its compute margin (at most one block when every block computes within its duration) and
its audio driver's buffers.

Offline causal reference (:meth:`StreamingSeparator.offline`): the whole signal, preceded by ``P``
zeros and followed by zeros, through ``torch.stft(center=False)``, each model in one call over all
frames from a zero LSTM state, the mixture phase, and overlap-add divided by the window's squared
overlap at each sample, cropped back to the input's span. The streaming output equals it (up to
float rounding) because the model is causal frame by frame: batch norm in eval mode is a
per-frame affine map and the LSTM is unidirectional. With ``precision="int8"`` both run
quantized models and agree only up to rounding: int8 quantizes each call's activations with
their own range, a block's in streaming, the whole signal's offline.

Audio is ``(nb_channels, nb_timesteps)``; ``nb_samples`` (the batch) is always 1.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from unmixlab.audio import SAMPLE_LIMIT, absurd_samples, match_channels, resample
from unmixlab.errors import UnmixlabError
from unmixlab.model import OpenUnmix
from unmixlab.model_io import load_target_model, read_separator_json
from unmixlab.quantize import Precision, check_precision, quantize
from unmixlab.streaming_step import StreamingStep, window_overlap

logger = logging.getLogger(__name__)


class StreamingSeparator:
    """Separates a live stream block by block with unidirectional target models.

    See the module docstring for the stream conventions, the latency and the offline reference.

    Args:
        models: target name -> unidirectional :class:`OpenUnmix` (same nfft, channels, hidden
            size and layers; bandwidth crops may differ).
        sample_rate: rate of the stream in Hz.
        nfft: STFT size.
        nhop: hop size.
        block_hops: hops per block (the stream's block is ``block_hops * nhop`` samples).
        precision: ``float32`` or ``int8`` weights (:mod:`unmixlab.quantize`).

    Raises:
        UnmixlabError: a model is bidirectional, the models do not fit together, or this
            PyTorch cannot run ``precision``.
    """

    def __init__(
        self,
        models: dict[str, OpenUnmix],
        sample_rate: int,
        nfft: int,
        nhop: int,
        block_hops: int = 2,
        precision: Precision = "float32",
    ):
        check_models(models, nfft)
        check_precision(precision)
        if block_hops < 1 or not 0 < nhop < nfft:
            raise UnmixlabError(
                f"block_hops={block_hops}, nhop={nhop}, nfft={nfft} cannot stream",
                "Use block_hops >= 1 and 0 < nhop < nfft",
            )
        self.models = models
        self.sample_rate = sample_rate
        self.nfft, self.nhop, self.block_hops = nfft, nhop, block_hops
        self.nb_channels = next(iter(models.values())).config.nb_channels
        self.block_size = block_hops * nhop
        self.delay = nfft - nhop  # output-stream sample k estimates input sample k - delay
        self.window = torch.hann_window(nfft)
        envelope = window_overlap(self.window, nhop)  # (nhop,), periodic in steady state
        if envelope.min() < 1e-6 * envelope.max():
            raise UnmixlabError(
                f"nhop {nhop} leaves gaps between Hann windows of {nfft} samples",
                "Use a hop of at most nfft / 2",
            )
        self.precision = precision
        self.step = StreamingStep(list(models.values()), nfft, nhop, block_hops, precision).eval()
        if precision == "int8":  # the offline reference in the same precision
            self.models = {target: quantize(model) for target, model in models.items()}
        self.reset()

    @property
    def targets(self) -> list[str]:
        """Names of the estimates, in output order."""
        return list(self.models)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples: ``nfft + (block_hops - 1) * nhop``."""
        return self.delay + self.block_size

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency in milliseconds (see the module docstring)."""
        return 1000.0 * self.latency_samples / self.sample_rate

    @property
    def block_ms(self) -> float:
        """Duration of one block in milliseconds."""
        return 1000.0 * self.block_size / self.sample_rate

    def use_engine(self, engine: "StreamingStep") -> None:
        """Run every block with ``engine`` instead of the PyTorch :class:`StreamingStep`.

        ``engine`` is called as the step is, ``(block, history, tail, h, c) -> (estimates,
        history, tail, h, c)``, and has its ``initial_state()`` (e.g.
        :class:`unmixlab.export.OnnxStep`).
        """
        self.step = engine
        self.reset()

    def reset(self) -> None:
        """Start a new stream: silence before it, zero LSTM state."""
        self._state = self.step.initial_state()
        self._block_index = 0
        self.zeroed_samples = 0  # NaN or infinite input samples replaced by zeros

    def warm_up(self, blocks: int = 4) -> None:
        """Process a few blocks of silence (first-call costs), then :meth:`reset`."""
        silence = torch.zeros(self.nb_channels, self.block_size)
        for _ in range(blocks):
            self.process_block(silence)
        self.reset()

    @torch.inference_mode()
    def process_block(self, block: Tensor) -> Tensor:
        """Separate the next block of the stream.

        Args:
            block: ``(nb_channels, block_size)`` input samples.

        Returns:
            ``(nb_targets, nb_channels, block_size)``: the next output-stream samples, which
            estimate the input ``delay`` samples earlier.

        Samples that are not audio (NaN, infinite or beyond
        :data:`unmixlab.audio.SAMPLE_LIMIT`) are zeroed, with a warning, and an LSTM state or
        estimate that overflowed starts afresh (zeroed), so one bad block never stops or
        spoils the rest of the stream.
        """
        self._block_index += 1
        absurd = absurd_samples(block)
        if absurd.any():
            bad = int(absurd.sum())
            self.zeroed_samples += bad
            block = block.masked_fill(absurd, 0.0)
            logger.warning(
                "warning: block %d of the stream held %d samples that are not audio (NaN, "
                "infinite or beyond +/-%g); they were zeroed",
                self._block_index,
                bad,
                SAMPLE_LIMIT,
            )
        estimates, history, tail, h, c = self.step(block, *self._state)
        finite = [bool(torch.isfinite(t).all()) for t in (estimates, tail, h, c)]
        if not all(finite):
            logger.warning(
                "warning: block %d overflowed the model; its state starts afresh", self._block_index
            )
            _, _, h, c = self.step.initial_state()
            estimates, tail = torch.nan_to_num(estimates, 0, 0, 0), torch.nan_to_num(tail, 0, 0, 0)
        self._state = (history, tail, h, c)
        return estimates

    def stream(
        self, blocks: Iterable[Tensor], block_seconds: list[float] | None = None
    ) -> Iterator[Tensor]:
        """Separate a stream, aligned with its input: what comes out estimates what went in.

        The first ``delay`` output-stream samples (before the input started) are dropped and
        the end is flushed with silence, so the outputs together are as long as the inputs.

        Args:
            blocks: ``(nb_channels, block_size)`` chunks (channels matched to the models);
                only the last may be shorter.
            block_seconds: if given, receives the processing seconds of every block.

        Yields:
            ``(nb_targets, nb_channels, n)`` estimates of consecutive input samples.
        """
        self.reset()
        size, fed, received, emitted = self.block_size, 0, 0, 0
        silence = torch.zeros(self.nb_channels, size)
        blocks = iter(blocks)
        while True:
            block = next(blocks, None)
            if block is None:
                if emitted >= received:
                    return
                block = silence
            else:
                received += block.shape[-1]
                if block.shape[-1] < size:
                    block = F.pad(block, (0, size - block.shape[-1]))
            start = time.perf_counter()
            out = self.process_block(block)
            if block_seconds is not None:
                block_seconds.append(time.perf_counter() - start)
            fed += size
            # this block produced input samples [fed - size - delay, fed - delay)
            stop = min(fed - self.delay, received)
            if stop > emitted:
                first = emitted - (fed - size - self.delay)
                yield out[..., first : first + stop - emitted]
                emitted = stop

    def separate(
        self, audio: Tensor, rate: int, block_seconds: list[float] | None = None
    ) -> dict[str, Tensor]:
        """Separate a whole recording by streaming it block by block.

        Args:
            audio: ``(nb_channels, nb_timesteps)`` at ``rate`` (resampled as needed, before and
                after the stream).
            rate: sample rate of ``audio``.
            block_seconds: if given, receives the processing seconds of every block.

        Returns:
            target name -> ``(nb_channels, nb_timesteps)`` at ``rate``.
        """
        mixture = match_channels(resample(audio, rate, self.sample_rate), self.nb_channels)
        chunks = torch.split(mixture, self.block_size, dim=-1)
        out = torch.cat(list(self.stream(chunks, block_seconds)), -1)
        return {
            name: resample(out[i], self.sample_rate, rate) for i, name in enumerate(self.models)
        }

    @torch.inference_mode()
    def offline(self, audio: Tensor) -> Tensor:
        """The offline causal reference: the whole signal in one pass (module docstring).

        Args:
            audio: ``(nb_channels, nb_timesteps)`` at ``sample_rate``, channels as the models.

        Returns:
            ``(nb_targets, nb_channels, nb_timesteps)``.
        """
        nfft, nhop, delay = self.nfft, self.nhop, self.delay
        length = audio.shape[-1]
        nb_frames = (length - 1 + delay) // nhop + 1  # the last frame overlapping the input
        padded = F.pad(audio, (delay, (nb_frames - 1) * nhop + nfft - delay - length))
        spec = torch.stft(
            padded, nfft, nhop, window=self.window, center=False, return_complex=True
        )  # (nb_channels, nb_bins, nb_frames)
        mag = spec.abs()[None]  # (1, nb_channels, nb_bins, nb_frames)
        estimates = torch.stack([model(mag)[0] for model in self.models.values()])
        complex_est = torch.polar(estimates, spec.angle().expand_as(estimates))
        frames = torch.fft.irfft(complex_est.transpose(-1, -2), n=nfft) * self.window
        # frames: (nb_targets, nb_channels, nb_frames, nfft) -> overlap-add along time
        total = padded.shape[-1]
        summed = F.fold(
            frames.flatten(0, 1).transpose(1, 2),
            output_size=(1, total),
            kernel_size=(1, nfft),
            stride=(1, nhop),
        )  # (nb_targets * nb_channels, 1, 1, total)
        overlap = F.fold(
            (self.window**2)[None, :, None].expand(1, nfft, nb_frames),
            output_size=(1, total),
            kernel_size=(1, nfft),
            stride=(1, nhop),
        )
        out = (summed / overlap.clamp_min(1e-11))[..., delay : delay + length]
        return out.reshape(len(self.models), self.nb_channels, length)


def check_models(models: dict[str, OpenUnmix], nfft: int) -> None:
    """Refuse bidirectional models and models that cannot share one stream.

    Raises:
        UnmixlabError: naming the first offending target.
    """
    if not models:
        raise UnmixlabError("no target model to stream", "Pass at least one target model")
    first = next(iter(models.values())).config
    for target, model in models.items():
        config = model.config
        if not config.unidirectional or model.lstm.bidirectional:
            raise UnmixlabError(
                f"model '{target}' has a bidirectional LSTM: each frame needs the rest of the "
                "song, so it cannot stream",
                "Train it with --unidirectional, or separate offline with `unmixlab separate`",
            )
        if config.nb_bins != nfft // 2 + 1:
            raise UnmixlabError(
                f"model '{target}' has {config.nb_bins} bins, nfft {nfft} gives {nfft // 2 + 1}",
                "Stream with the nfft the model was trained with",
            )
        shared = ("nb_channels", "hidden_size", "nb_layers")
        if any(getattr(config, key) != getattr(first, key) for key in shared):
            raise UnmixlabError(
                f"model '{target}' differs from the others in {', '.join(shared)}",
                "Stream targets trained with the same architecture (bandwidths may differ)",
            )


def load_streaming_separator(
    folder: Path,
    targets: list[str] | None = None,
    block_hops: int = 2,
    precision: Precision = "float32",
) -> StreamingSeparator:
    """Build a :class:`StreamingSeparator` from a reference-layout model folder.

    Raises:
        UnmixlabError: folder or models missing, or a model is bidirectional.
    """
    meta = read_separator_json(folder)
    targets = targets or meta["targets"]
    if not targets:
        raise UnmixlabError("model folder holds no target model", "Train a target first", folder)
    models = {target: load_target_model(folder, target) for target in targets}
    try:
        return StreamingSeparator(
            models, meta["sample_rate"], meta["nfft"], meta["nhop"], block_hops, precision
        )
    except UnmixlabError as error:
        raise UnmixlabError(error.problem, error.fix, folder) from error
