"""What an unlucky or hostile user meets: one ``error:`` line naming the file or flag, no
traceback, nothing rewritten; secrets never printed or stored; silent data, padding and
"nothing to train" said plainly."""

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient

from pipelines.cli import main
from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.model import OpenUnmix
from unmixlab.model_io import save_torch, write_json, write_separator_json
from unmixlab.trainer import train

TINY = ["--is-wav", "--epochs", "1", "--batch-size", "4", "--samples-per-track", "4",
        "--seq-dur", "1", "--nfft", "512", "--nhop", "128", "--hidden-size", "16",
        "--sample-rate", "16000", "--bandwidth", "8000"]  # fmt: skip


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args) -> tuple:
    """``unmixlab ARGS`` in this process: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["unmixlab", *map(str, args)])
    try:
        main()
        status = 0
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(status: int, err: str, offending: str) -> str:
    assert status == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert offending in errors[0], errors[0]
    assert "Traceback" not in err
    return errors[0]


class Evil:
    """Unpickling this would create ``marker``: a stand-in for running any code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def checkpoint_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "whole.chkpnt"
    save_torch({"epoch": 1, "config": {}, "state_dict": {"w": torch.zeros(4096)}}, path)
    return path.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "malicious", "foreign"])
def test_damaged_checkpoint_on_resume_gives_one_line_and_rewrites_nothing(
    damage: str, synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    output = tmp_path / "model"
    output.mkdir()
    checkpoint = output / "vocals.chkpnt"
    marker = tmp_path / "pwned"
    if damage == "empty":
        checkpoint.write_bytes(b"")
    elif damage == "truncated":
        whole = checkpoint_bytes(tmp_path)
        checkpoint.write_bytes(whole[: len(whole) // 2])
    elif damage == "random":
        checkpoint.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "malicious":
        torch.save({"config": Evil(marker)}, checkpoint)
    else:
        torch.save({"weights": torch.zeros(3)}, checkpoint)
    run_file = output / "vocals.mlflow.json"
    recorded = json.dumps({"mlflow_run_id": "0123456789abcdef", "tracking_uri": "sqlite:///x"})
    run_file.write_text(recorded)

    args = ["train", "--root", synth_root, *TINY, "--output", output, "--resume"]
    status, _, err = run(monkeypatch, capsys, *args)

    line = one_error_line(status, err, str(checkpoint))
    assert "train without --resume" in line
    assert not marker.exists()  # nothing was unpickled
    assert run_file.read_text() == recorded  # the run record is untouched
    assert MlflowClient().search_runs(["0"]) == [] and len(MlflowClient().search_experiments()) == 1


def model_folder(folder: Path) -> Path:
    config = TrainConfig(
        nfft=512, nhop=128, hidden_size=8, nb_layers=1, sample_rate=16000, bandwidth=8000
    )
    folder.mkdir()
    save_torch(OpenUnmix(config.architecture()).state_dict(), folder / "vocals.pth")
    write_json(folder / "vocals.json", {"model": config.architecture().model_dump()})
    write_separator_json(folder, 16000, 512, 128, 2)
    return folder


def test_empty_weights_and_incomplete_separator_json_give_one_line(
    synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    song = next((synth_root / "test").iterdir()) / "mixture.wav"
    model = model_folder(tmp_path / "model")
    (model / "vocals.pth").write_bytes(b"")
    args = ["separate", song, "--model", model, "--out", tmp_path / "out"]
    line = one_error_line(*run(monkeypatch, capsys, *args)[::2], str(model / "vocals.pth"))
    assert "is empty" in line

    shutil.rmtree(model)
    model = model_folder(tmp_path / "model")
    settings = json.loads((model / "separator.json").read_text())
    del settings["nfft"], settings["sample_rate"]
    (model / "separator.json").write_text(json.dumps(settings))
    line = one_error_line(*run(monkeypatch, capsys, *args)[::2], str(model / "separator.json"))
    assert "sample_rate, nfft" in line
    assert not (tmp_path / "out").exists()


def test_flag_errors_name_the_flag(synth_root: Path, monkeypatch, capsys):
    status, _, err = run(monkeypatch, capsys, "train", "--root", synth_root, "--batch-size", "0")
    line = one_error_line(status, err, "--batch-size")
    assert "greater than or equal to 1" in line


def test_password_in_the_tracking_uri_is_never_printed(
    synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    args = ["train", "--root", synth_root, *TINY, "--output", tmp_path / "model"]
    status, out, err = run(monkeypatch, capsys, *args)
    one_error_line(status, err, "http://127.0.0.1:9")
    assert "s3cret" not in out + err
    # MLflow still authenticates with it: moved to its variables, out of the URI
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"


@pytest.mark.slow
def test_resume_with_nothing_to_train_says_so(
    synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    output = tmp_path / "model"
    args = ["train", "--root", synth_root, *TINY, "--output", output, "--cache-dir", tmp_path]
    status, out, _ = run(monkeypatch, capsys, *args)
    assert status == 0 and out.startswith("trained vocals")
    modes = {stat.S_IMODE(p.stat().st_mode) for p in output.iterdir()}
    assert modes == {stat.S_IMODE(output.stat().st_mode) & 0o666}  # one mode, as the folder

    status, out, _ = run(monkeypatch, capsys, *args, "--resume")
    assert status == 0
    assert "nothing to train" in out and "trained to epoch 1, and --epochs is 1" in out
    assert "raise --epochs" in out

    # a checkpoint that stopped early: no further epoch, whatever --epochs says
    state = torch.load(output / "vocals.chkpnt", weights_only=True)
    state["history"]["bad_epochs"] = 1
    torch.save(state, output / "vocals.chkpnt")
    later = [a if a != "1" or args[i - 1] != "--epochs" else "3" for i, a in enumerate(args)]
    status, out, _ = run(monkeypatch, capsys, *later, "--patience", "1", "--resume")
    assert status == 0 and "stopped early" in out and "raise --patience" in out
    assert torch.load(output / "vocals.chkpnt", weights_only=True)["epoch"] == 1


def silent_copy(synth_root: Path, folder: Path) -> Path:
    """Two training tracks whose every stem is digital silence."""
    for track in sorted((synth_root / "train").iterdir())[:2]:
        (folder / "train" / track.name).mkdir(parents=True)
        for stem in track.iterdir():
            info = sf.info(stem)
            silence = np.zeros((info.frames, info.channels), dtype="int16")
            sf.write(folder / "train" / track.name / stem.name, silence, info.samplerate)
    return folder


def test_all_silent_data_is_named_as_such(synth_root: Path, tiny_config: TrainConfig, tmp_path):
    root = silent_copy(synth_root, tmp_path / "silent")
    with pytest.raises(UnmixlabError, match="training mixtures are silent") as error:
        train(tiny_config.updated(root=root))
    assert error.value.path == root / "train"


@pytest.mark.slow
def test_chunks_longer_than_the_tracks_are_said(tiny_config: TrainConfig, caplog):
    with caplog.at_level(logging.WARNING, logger="unmixlab.trainer"):
        train(tiny_config.updated(seq_dur=5.0, epochs=1))
    (message,) = [r.getMessage() for r in caplog.records if "--seq-dur" in r.getMessage()]
    assert "longer than 3 of 3 training tracks (shortest 4.00 s)" in message
    assert "padded with silence" in message


@pytest.mark.slow
def test_bad_data_in_the_training_flow_prints_no_traceback(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "run", "training",
         "--set", f"data.root={tmp_path / 'nowhere'}", "--set", "data.synth=null"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{tmp_path / 'nowhere'}: data root does not exist" in errors[0]
    assert "Task run failed with exception" in done.stderr  # Prefect still reports the failure
