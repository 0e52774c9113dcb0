"""The ``unmixlab`` console script: synth -> train -> separate end to end, and one-line errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from unmixlab.config import TrainConfig
from unmixlab.model import OpenUnmix
from unmixlab.model_io import save_torch, write_json, write_separator_json

pytestmark = pytest.mark.slow  # the command line end to end: not a unit test

UNMIXLAB = Path(sys.executable).parent / "unmixlab"
SR = 16000


def unmixlab(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed console script (one thread: tiny models, and the CPU may be shared)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [str(UNMIXLAB), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-distortion ratio in dB: 10 log10(|s|^2 / |s - s_hat|^2)."""
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    assert rate == SR
    return audio


def assert_one_error_line(result: subprocess.CompletedProcess, offending: Path) -> None:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(offending) in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_synth_train_separate_beats_the_mixture(tmp_path: Path) -> None:
    root, model, out = tmp_path / "musdb", tmp_path / "model", tmp_path / "separated"
    made = unmixlab(
        "data",
        "synth",
        root,
        "--tracks",
        8,
        "--seconds",
        6,
        "--seed",
        3,
        "--sample-rate",
        SR,
        "--test-tracks",
        2,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr

    trained = unmixlab(
        "train",
        "--root",
        root,
        "--is-wav",
        "--target",
        "vocals",
        "--epochs",
        10,
        "--batch-size",
        8,
        "--samples-per-track",
        8,
        "--seq-dur",
        2,
        "--nfft",
        1024,
        "--nhop",
        256,
        "--hidden-size",
        32,
        "--nb-layers",
        1,
        "--sample-rate",
        SR,
        "--bandwidth",
        8000,
        "--lr",
        0.01,
        "--seed",
        0,
        "--output",
        model,
        "--cache-dir",
        tmp_path / "cache",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    assert "trained vocals" in trained.stdout
    meta = json.loads((model / "vocals.json").read_text())
    train_loss, valid_loss = meta["train_loss_history"], meta["valid_loss_history"]
    assert len(train_loss) == 10
    assert train_loss[-1] < 0.5 * train_loss[0]
    assert min(valid_loss) < 0.7 * valid_loss[0]

    songs = sorted((root / "test").glob("*/mixture.wav"))
    separated = unmixlab("separate", *songs, "--model", model, "--out", out, cwd=tmp_path)
    assert separated.returncode == 0, separated.stderr
    scores, baselines = [], []
    for song in songs:
        vocals, mixture = read(song.parent / "vocals.wav"), read(song)
        estimate = read(out / song.parent.name / "vocals.wav")
        assert estimate.shape == vocals.shape
        scores.append(sdr(vocals, estimate))
        baselines.append(sdr(vocals, mixture))
    print(f"vocals SDR: model {scores}, mixture as estimate {baselines}")
    # clearly above the mixture, and above silence (0 dB), on every test track
    assert all(s > b + 3.0 for s, b in zip(scores, baselines, strict=True)), (scores, baselines)
    assert min(scores) > 1.0 and np.mean(scores) > 2.0, scores


@pytest.fixture
def root(synth_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "musdb"
    shutil.copytree(synth_root, copy)
    return copy


def test_train_on_a_truncated_stem_prints_one_error_line(root: Path, tmp_path: Path) -> None:
    track = sorted((root / "train").iterdir())[1]
    stem = track / "drums.wav"
    stem.write_bytes(stem.read_bytes()[:5000])
    result = unmixlab(
        "train",
        "--root",
        root,
        "--is-wav",
        "--nfft",
        512,
        "--nhop",
        128,
        "--sample-rate",
        SR,
        "--bandwidth",
        8000,
        "--output",
        tmp_path / "model",
        "--cache-dir",
        tmp_path / "cache",
        cwd=tmp_path,
    )
    assert_one_error_line(result, stem)
    assert "truncated" in result.stderr
    assert not (tmp_path / "cache").exists()
    assert not list(tmp_path.glob("model/*.pth")) and not list(tmp_path.glob("model/*.chkpnt"))


def test_separate_errors_print_one_line_and_write_nothing_partial(
    root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "separated"
    song = root / "test" / sorted(p.name for p in (root / "test").iterdir())[0] / "mixture.wav"
    result = unmixlab("separate", song, "--model", tmp_path / "nowhere", "--out", out, cwd=tmp_path)
    assert_one_error_line(result, tmp_path / "nowhere")
    assert not out.exists()

    # a model folder as training writes it (untrained weights), and a second song that is not audio
    model = tmp_path / "model"
    model.mkdir()
    config = TrainConfig(
        nfft=512, nhop=128, hidden_size=8, nb_layers=1, sample_rate=SR, bandwidth=8000, output=model
    )
    save_torch(OpenUnmix(config.architecture()).state_dict(), model / "vocals.pth")
    write_json(model / "vocals.json", {"model": config.architecture().model_dump()})
    write_separator_json(model, SR, 512, 128, 2)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio" * 100)
    result = unmixlab("separate", song, broken, "--model", model, "--out", out, cwd=tmp_path)
    assert_one_error_line(result, broken)
    # the first song is complete, the broken one left nothing, no temporary files anywhere
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        song.parent.name,
        f"{song.parent.name}/vocals.wav",
    ]
    assert read(out / song.parent.name / "vocals.wav").shape == (4 * SR, 2)


def test_train_on_a_wrong_root_tracks_nothing(tmp_path: Path) -> None:
    result = unmixlab("train", "--root", tmp_path / "nowhere", "--is-wav", cwd=tmp_path)
    assert_one_error_line(result, tmp_path / "nowhere")
    client = MlflowClient()
    assert client.get_experiment_by_name("unmixlab") is None
    assert client.search_runs([client.get_experiment_by_name("Default").experiment_id]) == []
