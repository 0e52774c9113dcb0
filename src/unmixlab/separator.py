"""Offline separation: target models -> masks -> (optional) multichannel Wiener filter -> audio.

Audio is ``(nb_channels, nb_timesteps)``; long songs are processed in segments with
context on both sides, so memory stays bounded whatever the song's length.
"""

from pathlib import Path

import norbert
import numpy as np
import torch
from torch import Tensor, nn

from unmixlab.audio import check_samples, match_channels, resample
from unmixlab.device import module_device
from unmixlab.errors import UnmixlabError
from unmixlab.model import OpenUnmix
from unmixlab.model_io import load_target_model, read_separator_json
from unmixlab.progress import tqdm
from unmixlab.quantize import Precision, inference_device, quantize
from unmixlab.transforms import ISTFT, STFT


class Separator(nn.Module):
    """Separates a mixture into the targets of its models (plus an optional residual)."""

    def __init__(
        self,
        models: dict[str, OpenUnmix],
        sample_rate: int,
        nfft: int,
        nhop: int,
        nb_channels: int,
        niter: int = 1,
        residual: bool = False,
        segment_seconds: float = 30.0,
        context_seconds: float = 3.0,
    ):
        super().__init__()
        self.models = nn.ModuleDict(models)
        self.sample_rate = sample_rate
        self.nb_channels = nb_channels
        self.niter = niter
        self.residual = residual
        self.segment = int(segment_seconds * sample_rate)
        self.context = int(context_seconds * sample_rate)
        self.stft = STFT(nfft, nhop)
        self.istft = ISTFT(nfft, nhop)

    @property
    def targets(self) -> list[str]:
        """Names of the estimates, in output order."""
        return list(self.models) + (["residual"] if self.residual else [])

    @torch.no_grad()
    def forward(self, audio: Tensor) -> Tensor:
        """Separate one segment.

        The models and transforms run on this module's device; the Wiener filter on the CPU.

        Args:
            audio: ``(nb_channels, nb_timesteps)`` at ``sample_rate``, on any device.

        Returns:
            ``(nb_targets, nb_channels, nb_timesteps)`` on the CPU.
        """
        device = module_device(self)
        spec = self.stft(audio[None].to(device))  # (1, nb_channels, nb_bins, nb_frames) complex
        mag = spec.abs()
        estimates = torch.stack([model(mag) for model in self.models.values()], -1)[0].cpu()
        spec = spec.cpu()
        # estimates: (nb_channels, nb_bins, nb_frames, nb_sources)
        # norbert's layout: v (nb_frames, nb_bins, nb_channels, nb_sources), x without nb_sources
        v = estimates.permute(2, 1, 0, 3).double().numpy()
        x = spec[0].permute(2, 1, 0).numpy().astype(np.complex128)
        y = v * np.exp(1j * np.angle(x))[..., None]  # each estimate takes the mixture phase
        if self.residual:  # everything the targets leave, as the reference computes it
            y = np.concatenate([y, x[..., None] - y.sum(-1, keepdims=True)], -1)
        if self.niter > 0 and y.shape[-1] > 1:  # EM on a single source would return the mixture
            scale = max(1.0, np.abs(x).max() / 10.0)  # as norbert.wiener, for stability
            y = norbert.expectation_maximization(y / scale, x / scale, self.niter)[0] * scale
        complex_est = torch.from_numpy(y).permute(3, 2, 1, 0).to(spec.dtype)
        # complex_est: (nb_targets, nb_channels, nb_bins, nb_frames)
        return self.istft(complex_est.to(device), length=audio.shape[-1]).float().cpu()

    def separate(self, audio: Tensor, rate: int, progress: bool = True) -> dict[str, Tensor]:
        """Separate a whole song, segment by segment.

        Args:
            audio: ``(nb_channels, nb_timesteps)`` at ``rate`` (resampled as needed).
            rate: sample rate of ``audio``.
            progress: show a progress bar over segments.

        Returns:
            target name -> ``(nb_channels, nb_timesteps)`` at ``rate``.

        Raises:
            UnmixlabError: ``audio`` holds samples that are not audio (NaN, infinite, beyond
                :data:`unmixlab.audio.SAMPLE_LIMIT`), or the model's estimate is not finite.
        """
        check_samples(audio.T.numpy(), rate)
        mixture = match_channels(resample(audio, rate, self.sample_rate), self.nb_channels)
        length = mixture.shape[-1]
        out = torch.zeros(len(self.targets), self.nb_channels, length)
        starts = range(0, length, self.segment)
        for start in tqdm(
            starts, desc="separating", unit="segment", disable=not progress or len(starts) < 2
        ):
            lo, hi = max(start - self.context, 0), min(start + self.segment + self.context, length)
            estimate = self(mixture[:, lo:hi])
            keep = min(self.segment, length - start)
            out[..., start : start + keep] = estimate[..., start - lo : start - lo + keep]
        if not torch.isfinite(out).all():
            raise UnmixlabError(
                "the model's estimate holds NaN or infinite samples",
                "The model is damaged (retrain it), or the input is far louder than full scale",
            )
        return {
            name: resample(out[i], self.sample_rate, rate) for i, name in enumerate(self.targets)
        }


def load_separator(
    folder: Path,
    targets: list[str] | None = None,
    niter: int = 1,
    residual: bool = False,
    device: str = "auto",
    precision: Precision = "float32",
) -> Separator:
    """Build a :class:`Separator` from a reference-layout model folder, on ``device``.

    ``precision="int8"`` quantizes the models' linear and LSTM layers (:mod:`unmixlab.quantize`,
    CPU only).

    Raises:
        UnmixlabError: the folder holds no usable model, ``device`` is not available, or
            ``precision`` cannot run on it.
    """
    target_device = inference_device(device, precision)
    meta = read_separator_json(folder)
    targets = targets or meta["targets"]
    if not targets:
        raise UnmixlabError("model folder holds no target model", "Train a target first", folder)
    models = {target: load_target_model(folder, target) for target in targets}
    for target, model in models.items():
        if (
            model.config.nb_bins != meta["nfft"] // 2 + 1
            or model.config.nb_channels != meta["nb_channels"]
        ):
            raise UnmixlabError(
                f"model '{target}' does not match separator.json (nfft/nb_channels)",
                "The folder mixes models of different trainings; keep one training per folder",
                Path(folder) / f"{target}.pth",
            )
    if precision == "int8":
        models = {target: quantize(model) for target, model in models.items()}
    separator = Separator(
        models,
        meta["sample_rate"],
        meta["nfft"],
        meta["nhop"],
        meta["nb_channels"],
        niter,
        residual,
    )
    return separator.to(target_device)
