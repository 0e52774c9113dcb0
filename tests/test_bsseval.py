"""unmixlab's BSS Eval v4 against museval's, on synthetic stems with estimates of several kinds."""

from pathlib import Path

import museval
import numpy as np
import pytest
import soundfile as sf
import torch
from museval.metrics import Framing

from unmixlab import bsseval
from unmixlab.synth import synthesize

RATE = 16000
WIN = RATE // 2  # half-second windows: several per short track
TAPS = 128  # museval spends its time in 512-tap solves: most tests use shorter filters
STEMS = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def stems(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The four stems of a 3 s synthetic song, ``(4, nb_timesteps, 2)`` float64."""
    root = synthesize(
        tmp_path_factory.mktemp("bss") / "musdb",
        tracks=1,
        seconds=3.0,
        seed=5,
        sample_rate=RATE,
        test_tracks=1,
    )
    (track,) = (root / "test").iterdir()
    return np.stack([sf.read(Path(track) / f"{name}.wav")[0] for name in STEMS])


def noise_like(reference: np.ndarray, level: float, seed: int) -> np.ndarray:
    """White noise ``level`` times the reference's RMS, the reference's shape."""
    rng = np.random.default_rng(seed)
    return level * np.sqrt(np.mean(reference**2)) * rng.standard_normal(reference.shape)


def museval_scores(references, estimates, win: int, hop: int, taps: int) -> tuple:
    """``museval.evaluate``, with filters of ``taps`` (its ``bss_eval`` in the same v4 mode)."""
    if taps == bsseval.FILTER_TAPS:
        return museval.evaluate(references, estimates, win=win, hop=hop)
    references, estimates = museval.pad_or_truncate(np.array(references), np.array(estimates))
    return museval.metrics.bss_eval(
        references, estimates, window=win, hop=hop, filters_len=taps, compute_permutation=False,
        framewise_filters=False, bsseval_sources_version=False,
    )[:4]  # fmt: skip


def assert_agrees(
    references: np.ndarray,
    estimates: np.ndarray,
    win: int = WIN,
    hop: int = WIN,
    taps: int = TAPS,
    sar_rounding: bool = False,
) -> tuple:
    """Both scorers: NaN in the same windows, per-window values within 0.05 dB, medians 0.01.

    With ``sar_rounding``, SAR is left out (both above 100 dB: float rounding, see the test).
    """
    expected = museval_scores(references, estimates, win, hop, taps)
    ours = bsseval.evaluate(references, estimates, win=win, hop=hop, taps=taps)
    for name, want, got in zip(("SDR", "ISR", "SIR", "SAR"), expected, ours, strict=True):
        assert got.shape == want.shape and got.dtype == np.float64, name
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        if sar_rounding and name == "SAR":
            continue
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=0.05, err_msg=name)
        if not np.isnan(want).all(axis=1).any():
            np.testing.assert_allclose(
                np.nanmedian(got, axis=1), np.nanmedian(want, axis=1), atol=0.01, err_msg=name
            )
    return expected, ours


def leaky(stems: np.ndarray) -> np.ndarray:
    """Float32 estimates that leak the other stems and add noise, as a separator's do."""
    leak = np.full((len(stems),) * 2, 0.15) + 0.6 * np.eye(len(stems))
    estimates = np.einsum("ij,jnc->inc", leak, stems)
    estimates += np.stack([noise_like(s, 0.2, seed) for seed, s in enumerate(stems)])
    return estimates.astype(np.float32)


@pytest.mark.slow
def test_leaky_noisy_estimates_of_the_four_stems(stems: np.ndarray):
    expected, _ = assert_agrees(stems, leaky(stems))
    assert np.isfinite(expected[0]).mean() > 0.5  # a test of real numbers (some rests: NaN)


@pytest.mark.slow
def test_leaky_noisy_estimates_of_the_four_stems_with_museval_defaults(stems: np.ndarray):
    expected, _ = assert_agrees(stems, leaky(stems), taps=bsseval.FILTER_TAPS)
    assert np.isfinite(expected[0]).mean() > 0.5


@pytest.mark.slow
def test_near_perfect_estimates(stems: np.ndarray):
    estimates = stems[:2] + noise_like(stems[:2], 1e-3, seed=1)  # about 60 dB SDR
    expected, _ = assert_agrees(stems[:2], estimates, taps=bsseval.FILTER_TAPS)
    assert np.nanmedian(expected[0]) > 40


def test_a_perfect_estimate_has_an_infinite_sdr_as_in_museval(stems: np.ndarray):
    estimates = stems[:2].copy()
    estimates[1] += noise_like(stems[1], 0.1, seed=2)
    sdr = bsseval.evaluate(stems[:2], estimates, win=WIN, hop=WIN, taps=TAPS)[0]
    assert np.isposinf(sdr[0]).all() and np.isfinite(sdr[1]).all()


def test_exact_mixtures_have_a_sar_in_float_rounding_in_both(stems: np.ndarray):
    estimates = np.einsum("ij,jnc->inc", [[0.8, 0.2], [0.3, 0.7]], stems[:2])  # no artifacts
    expected, ours = assert_agrees(stems[:2], estimates, sar_rounding=True)
    # where museval's SAR is above 100 dB, both measure float rounding, not the estimate
    assert (np.nanmin(expected[3]) > 100) and (np.nanmin(ours[3]) > 100)


def test_silent_stretches_make_nan_windows_as_in_museval(stems: np.ndarray):
    references = stems[:3].copy()
    references[0, WIN : 2 * WIN] = 0  # a silent reference window
    references[2, 3 * WIN + 100 : 4 * WIN + 3000] = 0  # silent, but not over a whole window
    estimates = references + noise_like(references, 0.3, seed=3)
    estimates[1, 4 * WIN : 5 * WIN] = 0  # a silent estimate window
    expected, ours = assert_agrees(references, estimates)
    assert np.isnan(ours[0][:, 1]).all() and np.isnan(ours[0][:, 4]).all()
    assert np.isfinite(ours[0][:, 3]).all()


def test_an_estimate_with_exactly_antiphase_channels_counts_as_silent(stems: np.ndarray):
    estimates = stems[:2] + noise_like(stems[:2], 0.3, seed=4)
    estimates[0, :WIN, 1] = -estimates[0, :WIN, 0]  # museval's rule: the channel sum is zero
    assert_agrees(stems[:2], estimates)


def test_overlapping_windows_and_a_short_last_stretch(stems: np.ndarray):
    estimates = stems[:2, :-1234] + noise_like(stems[:2, :-1234], 0.3, seed=5)  # padded
    assert_agrees(stems[:2, :-1000], estimates, win=WIN, hop=WIN // 3)


def test_a_track_shorter_than_a_window_is_one_window(stems: np.ndarray):
    references = stems[:2, 2000:6000]
    estimates = references + noise_like(references, 0.3, seed=6)
    expected, _ = assert_agrees(references, estimates, win=RATE, hop=RATE)
    assert expected[0].shape == (2, 1)


def test_mono_sources_without_a_channel_axis(stems: np.ndarray):
    references = stems[:2, :, 0]
    estimates = references + noise_like(references, 0.3, seed=7)
    assert_agrees(references, estimates)


@pytest.mark.parametrize(
    ("nb_timesteps", "win", "hop"), [(44100, 44100, 44100), (100000, 44100, 44100),
    (100000, 30000, 7000), (5000, 44100, 44100), (88200, 44100, 44100)]
)  # fmt: skip
def test_windows_are_museval_windows(nb_timesteps: int, win: int, hop: int):
    framing = list(Framing(win, hop, nb_timesteps))
    count, length = bsseval.windows(nb_timesteps, win, hop)
    assert count == len(framing)
    assert [(w.start, w.stop) for w in framing] == [
        (i * hop, i * hop + length) for i in range(count)
    ]


def test_bad_input_is_refused_as_museval_refuses_it(stems: np.ndarray):
    silent = stems[:2].copy()
    silent[1] = 0
    with pytest.raises(ValueError, match="reference source must be non-silent"):
        bsseval.evaluate(silent, stems[:2])
    with pytest.raises(ValueError, match="estimated source must be non-silent"):
        bsseval.evaluate(stems[:2], silent)
    with pytest.raises(ValueError, match="must both be"):
        bsseval.evaluate(stems[:2], stems[:3])
    empty = bsseval.evaluate(np.zeros((0, 0, 2)), np.zeros((0, 0, 2)))
    assert all(metric.size == 0 for metric in empty)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_numbers(stems: np.ndarray):
    estimates = stems + noise_like(stems, 0.3, seed=8)
    on_cpu = bsseval.evaluate(stems, estimates, win=WIN, hop=WIN)
    on_gpu = bsseval.evaluate(stems, estimates, win=WIN, hop=WIN, device="cuda")
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        np.testing.assert_allclose(gpu, cpu, atol=1e-6)
