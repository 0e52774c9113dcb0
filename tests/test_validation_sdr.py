"""The per-epoch separation score: the MDX global SDR."""

import math

import pytest
import torch

from unmixlab.validation_sdr import global_sdr


def test_global_sdr_is_signal_over_error_energy_in_db():
    reference = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    assert global_sdr(reference, 0.5 * reference) == pytest.approx(10 * math.log10(4), abs=1e-6)
    assert global_sdr(reference, torch.zeros_like(reference)) == pytest.approx(0.0, abs=1e-6)
    assert global_sdr(reference, reference) > 80  # perfect: bounded by the epsilon, finite
    noisy = reference + 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    assert global_sdr(reference, noisy) == pytest.approx(20.0, abs=0.3)  # 1 / 0.01 energy
