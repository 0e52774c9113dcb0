"""Absurd audio (random bytes, 3e38 spikes, far too loud mixtures) never crashes a live stream,
never leaves a file of garbage with a success status, and is refused by files in one line."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from test_streaming import noise, random_models, save_folder

from pipelines.cli import cli
from unmixlab.audio import SAMPLE_LIMIT, write_audio
from unmixlab.errors import UnmixlabError

RATE, NFFT, NHOP = 16000, 512, 128
RAW = ["--raw", "--rate", str(RATE), "--channels", "2", "--target", "vocals"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal vocals model with random weights (the refusals come before it runs)."""
    folder = tmp_path_factory.mktemp("hostile-random") / "model"
    return save_folder(folder, random_models(RATE, NFFT, 2, 8000, ("vocals",)), RATE, NFFT, NHOP)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synth_root) -> tuple:
    """A tiny causal vocals model trained on the synthetic data, and the data's root."""
    import tiny

    from unmixlab.trainer import train

    tmp = tmp_path_factory.mktemp("hostile")
    config = tiny.tiny_config(synth_root, tmp / "model", tmp / "cache", unidirectional=True)
    return train(config).output, synth_root


def stream_raw(model, data: bytes, *options: str):
    result = CliRunner().invoke(cli, ["stream", "--model", str(model), *RAW, *options], input=data)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    return np.frombuffer(result.stdout_bytes, dtype="<f4")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_a_minute_of_random_bytes_streams_to_finite_audio_within_full_scale(trained, precision):
    model, _ = trained
    frames = 60 * RATE
    data = np.random.default_rng(0).bytes(frames * 2 * 4)  # 60 s of stereo f32le noise bytes
    out = stream_raw(model, data, "--precision", precision)
    assert out.shape == (frames * 2,)
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= 1.0


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_huge_samples_in_a_live_stream_are_zeroed(tmp_path, precision):
    folder = save_folder(tmp_path / "m", random_models(RATE, NFFT, 2, 8000), RATE, NFFT, NHOP)
    audio = noise(2, 8000)
    spiked = audio.clone()
    spiked[:, 2000:2010] = 3e38  # ten samples per channel, as the reproduction
    out = stream_raw(folder, spiked.numpy().T.astype("<f4").tobytes(), "--precision", precision)
    clean = stream_raw(
        folder,
        spiked.masked_fill(spiked.abs() > SAMPLE_LIMIT, 0).numpy().T.astype("<f4").tobytes(),
        "--precision",
        precision,
    )
    np.testing.assert_array_equal(out, clean)  # as if the absurd samples were silence
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def spiked_song(path, seconds: float = 2.0) -> tuple:
    audio = 0.1 * np.random.default_rng(1).standard_normal((int(seconds * RATE), 2))
    audio[RATE // 4] = 3e38
    sf.write(path, audio.astype("float32"), RATE, subtype="FLOAT")
    return path


@pytest.mark.parametrize("command", ["stream", "separate"])
def test_a_file_with_a_huge_spike_is_refused_naming_it(model, tmp_path, command):
    song = spiked_song(tmp_path / "song.wav")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [command, str(song), "--model", str(model), "--out", str(out)])
    assert isinstance(result.exception, UnmixlabError), result.output
    message = str(result.exception)
    assert str(song) in message and "beyond +/-16" in message and "0.250 s" in message
    assert not out.exists()


def test_evaluate_refuses_a_test_track_with_a_huge_spike(model, synth_root, tmp_path):
    import shutil

    root = synth_root
    copy = tmp_path / "musdb"
    shutil.copytree(root, copy)
    track = sorted((copy / "test").iterdir())[0]
    mixture, rate = sf.read(track / "mixture.wav", dtype="float32")
    mixture[rate // 4] = 3e38
    sf.write(track / "mixture.wav", mixture, rate, subtype="FLOAT")
    result = CliRunner().invoke(
        cli, ["evaluate", "--model", str(model), "--root", str(copy), "--is-wav", "--out", "ev"]
    )
    assert isinstance(result.exception, UnmixlabError), result.output
    assert str(track / "mixture.wav") in str(result.exception)


def test_audio_that_would_be_mostly_clipped_or_is_not_finite_is_never_written(tmp_path):
    loud = 8 * noise(2, 4000)  # well within the input range, but mostly beyond full scale
    with pytest.raises(UnmixlabError, match="beyond full scale and would be clipped"):
        write_audio(tmp_path / "loud.wav", loud, RATE)
    nan = noise(2, 4000)
    nan[0, 7] = float("nan")
    with pytest.raises(UnmixlabError, match="NaN or infinite"):
        write_audio(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    assert list(tmp_path.iterdir()) == []
    write_audio(tmp_path / "fine.wav", torch.clamp(noise(2, 4000), -1.2, 1.2), RATE)
    assert (tmp_path / "fine.wav").is_file()  # a few clipped peaks are still written
