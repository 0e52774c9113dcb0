"""Long commands show progress on a real terminal: a pseudo-terminal, sized or not.

A pty opened without a window size (``script`` in a headless session) reports 0 x 0; tqdm
alone then hides every bar, so these tests run each command on both kinds.
"""

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from unmixlab.tuning.search import start_search
from unmixlab.tuning.settings import TuneConfig
from unmixlab.tuning.storage import default_storage_url

UNMIXLAB = Path(sys.executable).parent / "unmixlab"
TINY = [
    "--is-wav", "--batch-size", "4", "--samples-per-track", "4", "--seq-dur", "1.0",
    "--nfft", "512", "--nhop", "128", "--hidden-size", "16", "--sample-rate", "16000",
    "--bandwidth", "8000", "--seed", "0",
]  # fmt: skip


def run_on_pty(args: list[object], cwd: Path, size: tuple[int, int], timeout: float = 300) -> str:
    """Run ``args`` with a pty of ``size`` (rows, columns) as its terminal; return the output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout and stderr
        os.chdir(cwd)
        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        os.execv(str(args[0]), [str(a) for a in args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 1.0)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    return text


@pytest.mark.slow
@pytest.mark.parametrize("size", [(0, 0), (24, 80)], ids=["unsized-pty", "80x24"])
def test_training_and_evaluation_show_progress_on_a_terminal(
    synth_root: Path, tmp_path: Path, size: tuple[int, int]
):
    model = tmp_path / "model"
    out = run_on_pty(
        [UNMIXLAB, "train", "--root", synth_root, *TINY, "--epochs", "3", "--output", model,
         "--cache-dir", tmp_path / "cache"],
        tmp_path, size,
    )  # fmt: skip
    assert "training vocals:  33%" in out and "1/3" in out, out  # after the first epoch
    assert "valid=" in out  # with the loss
    assert "epoch 1:" in out  # and the batches within an epoch

    out = run_on_pty(
        [UNMIXLAB, "evaluate", "--root", synth_root, "--is-wav", "--model", model,
         "--out", tmp_path / "eval", "--workers", "1"],
        tmp_path, size,
    )  # fmt: skip
    assert "evaluating test tracks:  50%" in out and "1/2" in out, out


@pytest.mark.slow
def test_tuning_trials_show_progress_on_an_unsized_terminal(tiny_config, tmp_path: Path):
    url = default_storage_url(tmp_path)
    tune = TuneConfig.model_validate(
        {"trials": 2, "epochs": 1, "pruner": "none", "space": {"hidden_size": [8, 16]}}
        | {"space": {"hidden_size": [8, 16], "lr": None, "batch_size": None,
                     "samples_per_track": None, "unidirectional": None}}
    )  # fmt: skip
    start_search(
        tiny_config, tune, study_name="shown", experiment="progress", storage_url=url,
        trials_dir=tmp_path / "trials",
    )  # fmt: skip
    out = run_on_pty(
        [UNMIXLAB, "tune", "worker", "--study", "shown", "--storage", url], tmp_path, (0, 0)
    )
    assert "study shown:  50%" in out and "trial 0 complete" in out, out
    assert "training vocals" in out  # each trial's epochs too
