"""Files and settings that lie (separator.json out of range, a preset that is not UTF-8, an
8-channel wav, a missing database driver, impossible flags) give one line naming them."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from test_streaming import random_models, save_folder
from test_unlucky_user import TINY, one_error_line, run

from unmixlab.errors import UnmixlabError
from unmixlab.model_io import read_separator_json

RATE, NFFT, NHOP = 16000, 512, 128


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"nhop": 0}, "nhop 0 (must be between 1 and nfft)"),
        ({"nhop": -128}, "nhop -128 (must be between 1 and nfft)"),
        ({"nhop": 1024}, "nhop 1024 (must be between 1 and nfft)"),
        ({"sample_rate": 0}, "sample_rate 0 (must be positive)"),
        ({"nfft": 0, "nhop": 0}, "nfft 0 (must be at least 2)"),
        ({"nb_channels": 8}, "nb_channels 8 (must be 1 or 2)"),
    ],
)
def test_separator_json_values_out_of_range_name_the_file(
    change, said, tmp_path, monkeypatch, capsys
):
    folder = save_folder(
        tmp_path / "m", random_models(RATE, NFFT, 2, 8000, ("vocals",)), RATE, NFFT, NHOP
    )
    path = folder / "separator.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(UnmixlabError, match="out of range") as error:
        read_separator_json(folder)
    assert said in str(error.value) and error.value.path == path
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((RATE, 2), "float32"), RATE)
    for command in (
        ["separate", song, "--out", tmp_path / "o"],
        ["stream", song, "--out", tmp_path / "o"],
    ):
        one_error_line(*run(monkeypatch, capsys, *command, "--model", folder)[::2], str(path))


def test_a_preset_that_is_not_utf8_names_the_file(tmp_path, monkeypatch, capsys):
    preset = tmp_path / "latin1.yaml"
    preset.write_bytes("name: café\ntrain:\n  epochs: 1\n".encode("latin-1"))
    for command in (["run", "training"], ["kubeflow", "run-local"]):
        status, _, err = run(monkeypatch, capsys, *command, "--preset", preset)
        line = one_error_line(status, err, str(preset))
        assert "not UTF-8" in line and "byte 0xe9" in line


def test_an_eight_channel_wav_names_the_file(tmp_path, monkeypatch, capsys):
    folder = save_folder(
        tmp_path / "m", random_models(RATE, NFFT, 2, 8000, ("vocals",)), RATE, NFFT, NHOP
    )
    song = tmp_path / "eight.wav"
    sf.write(song, np.zeros((RATE, 8), "float32"), RATE)
    for command in ("separate", "stream"):
        args = [command, song, "--model", folder, "--out", tmp_path / "o"]
        line = one_error_line(*run(monkeypatch, capsys, *args)[::2], str(song))
        assert "has 8 channels" in line


def test_impossible_stft_flags_name_the_flags(synth_root, monkeypatch, capsys):
    args = ["train", "--root", synth_root, "--nfft", "256", "--nhop", "1024"]
    line = one_error_line(*run(monkeypatch, capsys, *args)[::2], "--nhop")
    assert "--nfft" in line and "--model" not in line


def test_compile_refuses_an_empty_image(tmp_path, monkeypatch, capsys):
    pytest.importorskip("kfp")
    out = tmp_path / "p.yaml"
    for image in ("", "  "):
        args = ["kubeflow", "compile", out, "--image", image]
        assert "--image is empty" in one_error_line(
            *run(monkeypatch, capsys, *args)[::2], "--image"
        )
    assert not out.exists()


@pytest.fixture
def no_postgres_driver(monkeypatch):
    """As if neither psycopg nor psycopg2 were installed (importing them fails)."""
    for module in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, module, None)


def test_a_missing_postgres_driver_names_the_extra(
    no_postgres_driver, synth_root, tmp_path, monkeypatch, capsys
):
    database = "postgresql://unmixlab@127.0.0.1:9/unmixlab"
    status, _, err = run(
        monkeypatch, capsys, "run", "tuning", "--storage", database, "--trials", "1"
    )
    line = one_error_line(status, err, "pip install 'unmixlab[postgres]'")
    assert "Optuna storage" in line

    monkeypatch.setenv("MLFLOW_TRACKING_URI", database)
    args = ["train", "--root", synth_root, *TINY, "--output", tmp_path / "model"]
    line = one_error_line(*run(monkeypatch, capsys, *args)[::2], "pip install 'unmixlab[postgres]'")
    assert "MLflow tracking store" in line


@pytest.mark.slow
def test_a_failed_kubeflow_step_prints_no_traceback_and_names_the_file(synth_root, tmp_path):
    pytest.importorskip("kfp")
    import shutil

    data = tmp_path / "musdb"
    shutil.copytree(synth_root, data)
    stem = sorted((data / "train").iterdir())[0] / "vocals.wav"
    audio, rate = sf.read(stem, dtype="float32")
    audio[rate // 2] = 3e38
    sf.write(stem, audio, rate, subtype="FLOAT")
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "kubeflow",
               "run-local", "--preset", "quickstart", "--data-uri", str(data),
               "--outputs", "kfp"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: a step of the Kubeflow pipeline failed")
    assert "vocals.wav" in last and "beyond +/-16" in last
