"""A training killed with ``kill -9`` leaves its MLflow run RUNNING; the next training of the
same model folder closes it: a restart marks it KILLED, a resume continues it, each with a note."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from test_unlucky_user import TINY, run

from unmixlab.tracking.names import NOTE_TAG

CLI = [sys.executable, "-c", "from pipelines.cli import main; main()"]


def killed_training(synth_root: Path, output: Path) -> str:
    """Start a long training, ``kill -9`` it after its first checkpoint; its run id."""
    args = [*CLI, "train", "--root", str(synth_root), *TINY, "--output", str(output)]
    args += ["--epochs", "1000", "--patience", "1000"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # a timeout for a broken test, not a figure asserted
    try:
        while not (output / "vocals.chkpnt").is_file():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    run_id = json.loads((output / "vocals.mlflow.json").read_text())["mlflow_run_id"]
    assert MlflowClient().get_run(run_id).info.status == "RUNNING"  # left behind
    return run_id


@pytest.mark.slow
def test_a_restart_marks_the_killed_run_killed_with_a_note(
    synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    output = tmp_path / "model"
    stale = killed_training(synth_root, output)
    status, _, err = run(
        monkeypatch, capsys, "train", "--root", synth_root, *TINY, "--output", output
    )
    assert status == 0, err
    client = MlflowClient()
    old = client.get_run(stale)
    assert old.info.status == "KILLED"
    assert "stopped without ending the run" in old.data.tags[NOTE_TAG]
    assert str(output) in old.data.tags[NOTE_TAG]
    new_id = json.loads((output / "vocals.mlflow.json").read_text())["mlflow_run_id"]
    assert new_id != stale and client.get_run(new_id).info.status == "FINISHED"


@pytest.mark.slow
def test_a_resume_continues_the_killed_run_and_says_so(
    synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    output = tmp_path / "model"
    stale = killed_training(synth_root, output)
    args = ["train", "--root", synth_root, *TINY, "--output", output, "--resume", "--epochs", "2"]
    status, _, err = run(monkeypatch, capsys, *args)
    assert status == 0, err
    resumed = MlflowClient().get_run(stale)
    assert resumed.info.status == "FINISHED"
    assert "resumed" in resumed.data.tags[NOTE_TAG]
    assert "stopped without ending the run" in resumed.data.tags[NOTE_TAG]
