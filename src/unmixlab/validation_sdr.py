"""A cheap separation score per epoch: the global SDR of the validation tracks.

The MDX challenge's SDR, ``10 log10(‖s‖² / ‖s − ŝ‖²)`` over a whole track, of the target
estimated as the model's magnitude with the mixture's phase (no Wiener filter). It answers
the seed's question "does a lower loss mean better separation?" epoch by epoch, at the cost
of one more validation pass; museval stays the final score.
"""

import math

import torch
from torch import Tensor

from unmixlab.transforms import ISTFT, STFT

EPSILON = 1e-8  # keeps silent references and perfect estimates finite


def global_sdr(reference: Tensor, estimate: Tensor) -> float:
    """``10 log10(‖s‖² / ‖s − ŝ‖²)`` in dB over all channels and samples.

    Args:
        reference: the true target ``(nb_channels, nb_timesteps)``.
        estimate: its estimate, same shape.
    """
    signal = reference.double().pow(2).sum() + EPSILON
    error = (reference.double() - estimate.double()).pow(2).sum() + EPSILON
    return float(10 * torch.log10(signal / error))


@torch.no_grad()
def validation_sdr(trainer: "Trainer") -> float:  # noqa: F821 - unmixlab.trainer imports this
    """Mean global SDR (dB) of ``trainer``'s model over its validation tracks.

    Each track: STFT of the mixture ``(1, nb_channels, nb_bins, nb_frames)``, the model's
    target magnitude (same shape) with the mixture's phase, inverse STFT, global SDR.
    """
    settings = trainer.config.model
    stft = STFT(settings.nfft, settings.nhop).to(trainer.device)
    istft = ISTFT(settings.nfft, settings.nhop).to(trainer.device)
    model = trainer.model
    model.eval()
    scores = []
    for mixture, target in trainer.valid_set:  # each (nb_channels, nb_timesteps)
        mixture = mixture.to(trainer.device)[None]  # (1, nb_channels, nb_timesteps)
        spec = stft(mixture)
        estimate = model(trainer.encoder(mixture))  # (1, nb_channels or 1, nb_bins, nb_frames)
        phase = torch.exp(1j * spec.angle())
        audio = istft(estimate * phase, length=mixture.shape[-1])[0]
        scores.append(global_sdr(target.to(audio.device), audio))
    finite = [s for s in scores if math.isfinite(s)]
    return sum(finite) / len(finite) if finite else math.nan
