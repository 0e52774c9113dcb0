"""Nothing corrupt, nothing overwritten: full disks and read-only folders give one line, a
model folder is whole or absent, one training per model at a time, a first MLflow store made
once, and identical trainings give identical bytes."""

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient
from test_streaming import noise, random_models, save_folder
from test_unlucky_user import TINY, one_error_line, run

from unmixlab.errors import UnmixlabError
from unmixlab.files import staged_files
from unmixlab.locks import lock_path, output_lock
from unmixlab.model_io import save_torch, write_json
from unmixlab.trainer import train

RATE, NFFT, NHOP = 16000, 512, 128


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_identical_trainings_give_identical_model_bytes(tiny_config, tmp_path: Path):
    first = train(tiny_config.updated(epochs=1, output=tmp_path / "a")).output
    second = train(tiny_config.updated(epochs=1, output=tmp_path / "b")).output
    assert digest(first / "vocals.pth") == digest(second / "vocals.pth")
    # the bytes do not depend on the writer's temporary names either
    save_torch({"w": torch.arange(4.0)}, tmp_path / "x.pth")
    save_torch({"w": torch.arange(4.0)}, tmp_path / "y" / "x.pth")
    assert digest(tmp_path / "x.pth") == digest(tmp_path / "y" / "x.pth")


def test_a_failed_set_of_model_files_leaves_the_folder_as_it_was(tmp_path: Path):
    folder = tmp_path / "model"
    with staged_files(folder) as stage:
        write_json(stage / "vocals.json", {"epoch": 1})
        (stage / "vocals.pth").write_bytes(b"epoch 1")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(before) == ["vocals.json", "vocals.pth"]
    with pytest.raises(UnmixlabError, match="disk full") as error:
        with staged_files(folder) as stage:
            (stage / "vocals.pth").write_bytes(b"epoch 2")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert error.value.path == folder
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no hidden leftovers


def tmpfs(path: Path, size: str, read_only: bool = False) -> Path:
    """Mount a tmpfs of ``size`` at ``path`` (root only; skips the test elsewhere)."""
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
    ):
        pytest.skip("mounting a small tmpfs needs root")
    return path


@pytest.fixture(params=["full", "read-only"])
def bad_disk(request, tmp_path: Path):
    """A folder on a full tmpfs, or on a read-only one: (folder, what the error says)."""
    full = request.param == "full"
    disk = tmpfs(tmp_path / "disk", "256k", read_only=not full)
    try:
        if full:
            filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(filler, b"\0" * 4096):  # fill every block
                    pass
            except OSError:
                pass
            os.close(filler)
        yield disk, "disk full" if full else "read-only"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture(scope="module")
def causal_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("writers") / "model"
    return save_folder(folder, random_models(RATE, NFFT, 2, 6000, ("vocals",)), RATE, NFFT, NHOP)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("train", marks=pytest.mark.slow),
        "stream",
        "separate",
        pytest.param("export", marks=pytest.mark.slow),
        "compile",
    ],
)
def test_full_or_read_only_output_gives_one_line(
    command, bad_disk, causal_model, synth_root, tmp_path, monkeypatch, capsys
):
    disk, said = bad_disk
    song = tmp_path / "song.wav"
    sf.write(song, noise(2, RATE).numpy().T, RATE, subtype="FLOAT")
    args = {
        "train": ["train", "--root", synth_root, *TINY, "--output", disk / "model",
                  "--cache-dir", tmp_path / "cache"],
        "stream": ["stream", song, "--model", causal_model, "--out", disk / "stems"],
        "separate": ["separate", song, "--model", causal_model, "--out", disk / "stems"],
        "export": ["export", "onnx", causal_model, disk / "step.onnx"],
        "compile": ["kubeflow", "compile", disk / "pipeline.yaml"],
    }[command]  # fmt: skip
    status, _, err = run(monkeypatch, capsys, *args)
    line = one_error_line(status, err, str(disk))
    assert said in line
    if command == "train":  # whole or absent: no model file without the others
        names = {p.name for p in (disk / "model").glob("*")} if (disk / "model").exists() else set()
        assert not names & {"vocals.pth", "vocals.json", "separator.json", "vocals.chkpnt"}


def hold_lock_in_another_process(output: Path, seconds: float) -> subprocess.Popen:
    """A process holding ``output``'s vocals lock for ``seconds``; returns once it holds it."""
    code = (
        "import sys, time\n"
        "from unmixlab.locks import output_lock\n"
        "with output_lock(sys.argv[1], 'vocals'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(output), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.slow
def test_a_second_training_of_the_same_model_stops_naming_the_first(
    synth_root, tmp_path, monkeypatch, capsys
):
    output = tmp_path / "model"
    holder = hold_lock_in_another_process(output, 120)
    try:
        args = ["train", "--root", synth_root, *TINY, "--output", output]
        line = one_error_line(
            *run(monkeypatch, capsys, *args)[::2], str(lock_path(output, "vocals"))
        )
        assert f"pid {holder.pid}" in line and "--wait-for-lock" in line
        assert sorted(p.name for p in output.iterdir()) == ["vocals.lock"]  # nothing written
        assert MlflowClient().search_runs(["0"]) == []  # and no run begun
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing its lock file: the next training takes it over
    assert lock_path(output, "vocals").is_file()
    status, out, err = run(monkeypatch, capsys, *args)
    assert status == 0, err
    assert not lock_path(output, "vocals").exists()


@pytest.mark.slow
def test_wait_for_lock_trains_after_the_holder_ends(tiny_config, tmp_path, caplog):
    output = tmp_path / "model"
    holder = hold_lock_in_another_process(output, 3)
    result = train(tiny_config.updated(epochs=1, output=output, wait_for_lock=True))
    assert holder.poll() is not None  # the holder had ended before the training could write
    assert f"pid {holder.pid}" in caplog.text and "waiting for" in caplog.text
    assert (result.output / "vocals.pth").is_file()


def test_the_same_thread_may_take_its_lock_again_another_may_not(tmp_path: Path):
    import threading

    errors = []
    with output_lock(tmp_path, "vocals"), output_lock(tmp_path, "vocals"):
        thread = threading.Thread(
            target=lambda: errors.append(
                pytest.raises(UnmixlabError, output_lock(tmp_path, "vocals").__enter__)
            )
        )
        thread.start()
        thread.join()
    assert "another training writes this model" in str(errors[0].value)
    with output_lock(tmp_path, "vocals"):  # released: free again
        pass


@pytest.mark.slow
def test_first_runs_in_a_new_folder_create_the_mlflow_store_once(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    (tmp_path / "fresh").mkdir()
    code = (
        "import sys\n"
        "from mlflow import MlflowClient\n"
        "from unmixlab.tracking.setup import ensure_tracking_reachable, get_or_create_experiment\n"
        "ensure_tracking_reachable(sys.argv[1])\n"
        "print(get_or_create_experiment(MlflowClient(sys.argv[1]), 'first'))\n"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(), *p.communicate()) for p in starts]
    assert all(status == 0 for status, _, _ in results), results
    assert len({out for _, out, _ in results}) == 1  # one experiment, seen by all three
