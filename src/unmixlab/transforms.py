"""Short-time Fourier transforms, as Open-Unmix computes them, on ``torch.stft``.

Shapes follow Open-Unmix: ``nb_samples`` is the batch.
- audio: ``(nb_samples, nb_channels, nb_timesteps)``
- complex spectrogram: ``(nb_samples, nb_channels, nb_bins, nb_frames)`` (complex dtype)
- magnitude spectrogram: same shape, real
"""

import numpy as np
import torch
from torch import Tensor, nn


def bandwidth_to_max_bin(sample_rate: float, nfft: int, bandwidth: float) -> int:
    """Number of STFT bins whose centre frequency is at most ``bandwidth`` Hz."""
    freqs = np.linspace(0, sample_rate / 2, nfft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0]) + 1)


class STFT(nn.Module):
    """Centred STFT with a periodic Hann window (the reference Open-Unmix filterbank)."""

    def __init__(self, nfft: int = 4096, nhop: int = 1024, center: bool = True):
        super().__init__()
        self.nfft = nfft
        self.nhop = nhop
        self.center = center
        self.window = nn.Parameter(torch.hann_window(nfft), requires_grad=False)

    def forward(self, audio: Tensor) -> Tensor:
        """``(nb_samples, nb_channels, nb_timesteps)`` -> complex ``(..., nb_bins, nb_frames)``."""
        shape = audio.shape
        flat = audio.reshape(-1, shape[-1])  # (nb_samples * nb_channels, nb_timesteps)
        spec = torch.stft(
            flat,
            n_fft=self.nfft,
            hop_length=self.nhop,
            window=self.window,
            center=self.center,
            normalized=False,
            onesided=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.reshape(shape[:-1] + spec.shape[-2:])


class ISTFT(nn.Module):
    """Inverse of :class:`STFT` (overlap-add with the same window)."""

    def __init__(self, nfft: int = 4096, nhop: int = 1024, center: bool = True):
        super().__init__()
        self.nfft = nfft
        self.nhop = nhop
        self.center = center
        self.window = nn.Parameter(torch.hann_window(nfft), requires_grad=False)

    def forward(self, spec: Tensor, length: int | None = None) -> Tensor:
        """Complex ``(..., nb_bins, nb_frames)`` -> audio ``(..., nb_timesteps)``."""
        shape = spec.shape
        flat = spec.reshape(-1, shape[-2], shape[-1])  # (batch * channels, nb_bins, nb_frames)
        audio = torch.istft(
            flat,
            n_fft=self.nfft,
            hop_length=self.nhop,
            window=self.window,
            center=self.center,
            normalized=False,
            onesided=True,
            length=length,
        )
        return audio.reshape(shape[:-2] + audio.shape[-1:])


def magnitude(spec: Tensor, mono: bool = False) -> Tensor:
    """Magnitude of a complex spectrogram; ``mono`` averages the channels (keeping the axis)."""
    mag = spec.abs()
    return mag.mean(1, keepdim=True) if mono else mag


class Spectrogram(nn.Module):
    """Magnitude STFT: audio ``(..., nb_timesteps)`` -> ``(..., nb_bins, nb_frames)``."""

    def __init__(self, nfft: int = 4096, nhop: int = 1024, mono: bool = False):
        super().__init__()
        self.stft = STFT(nfft, nhop)
        self.mono = mono

    def forward(self, audio: Tensor) -> Tensor:
        """Audio ``(nb_samples, nb_channels, nb_timesteps)`` to magnitudes."""
        return magnitude(self.stft(audio), mono=self.mono)
