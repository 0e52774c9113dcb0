"""STFT, ISTFT and magnitude: shapes, perfect reconstruction, the reference bandwidth crop."""

import numpy as np
import pytest
import torch

from unmixlab.transforms import ISTFT, STFT, Spectrogram, bandwidth_to_max_bin, magnitude


@pytest.mark.parametrize(
    "shape", [(1, 1, 8000), (1, 2, 8000), (3, 2, 7777)], ids=["mono", "stereo", "batch"]
)
@pytest.mark.parametrize("nfft,nhop", [(512, 128), (1024, 256), (256, 64)])
def test_stft_istft_round_trip(shape: tuple[int, int, int], nfft: int, nhop: int) -> None:
    audio = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    spec = STFT(nfft, nhop)(audio)
    assert spec.is_complex()
    nb_frames = 1 + shape[-1] // nhop  # centred frames
    assert spec.shape == (*shape[:-1], nfft // 2 + 1, nb_frames)
    back = ISTFT(nfft, nhop)(spec, length=shape[-1])
    assert back.shape == audio.shape
    torch.testing.assert_close(back, audio, atol=1e-5, rtol=1e-5)


def test_stft_treats_channels_independently() -> None:
    audio = torch.randn(2, 2, 4000, generator=torch.Generator().manual_seed(1))
    stft = STFT(512, 128)
    spec = stft(audio)
    torch.testing.assert_close(spec[1, 0], stft(audio[1:2, 0:1])[0, 0])


def test_stft_of_a_sine_peaks_at_its_bin() -> None:
    rate, nfft = 16000, 512
    freq = 40 * rate / nfft  # exactly bin 40
    t = torch.arange(rate) / rate
    spec = STFT(nfft, 128)(torch.sin(2 * torch.pi * freq * t)[None, None])
    mid = spec[0, 0, :, spec.shape[-1] // 2].abs()
    assert int(mid.argmax()) == 40
    assert mid[40] == pytest.approx(nfft / 4, rel=1e-3)  # Hann window: amplitude * nfft / 4


def test_magnitude_and_spectrogram() -> None:
    audio = torch.randn(2, 2, 3000, generator=torch.Generator().manual_seed(2))
    spec = STFT(256, 64)(audio)
    torch.testing.assert_close(magnitude(spec), spec.abs())
    mono = magnitude(spec, mono=True)
    assert mono.shape == (2, 1, 129, spec.shape[-1])
    torch.testing.assert_close(mono, spec.abs().mean(1, keepdim=True))
    torch.testing.assert_close(Spectrogram(256, 64)(audio), spec.abs())
    torch.testing.assert_close(Spectrogram(256, 64, mono=True)(audio), mono)


@pytest.mark.parametrize(
    "rate,nfft,bandwidth",
    [
        (44100, 4096, 16000),
        (16000, 512, 8000),
        (16000, 1024, 4000),
        (22050, 2048, 100.0),
        (8000, 256, 3999.9),
        (44100, 4096, 22050),
    ],
)
def test_bandwidth_to_max_bin_matches_the_reference(rate: int, nfft: int, bandwidth: float) -> None:
    reference = pytest.importorskip("openunmix.utils")
    expected = int(reference.bandwidth_to_max_bin(rate, nfft, bandwidth))
    assert bandwidth_to_max_bin(rate, nfft, bandwidth) == expected
    freqs = np.linspace(0, rate / 2, nfft // 2 + 1)
    assert freqs[expected - 1] <= bandwidth
    assert expected == nfft // 2 + 1 or freqs[expected] > bandwidth


def test_reference_default_max_bin() -> None:
    assert bandwidth_to_max_bin(44100, 4096, 16000) == 1487
