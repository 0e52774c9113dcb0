"""SIGINT, SIGTERM and SIGKILL on a real ``unmixlab run …``: it stops, and leaves nothing.

The command runs without ``PREFECT_API_URL``, so it starts its own temporary Prefect server
(``pipelines.prefect_server``); its flow runs are rows of that server's SQLite database.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from pipelines.prefect_server import free_port, start_server, wait_until_healthy

STOP_SECONDS = 15.0  # "a few seconds", on a 2-core machine shared with other jobs


def start(
    flow: str, synth_root: Path, tmp_path: Path, prefect_home: Path, *args: str
) -> tuple[subprocess.Popen, Path]:
    """``unmixlab run FLOW`` on the shared tiny data, with far more epochs than it gets."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home)
    overrides = [
        f"data.root={synth_root}", "data.synth=null", f"data.cache_dir={tmp_path / 'cache'}",
        f"output={tmp_path / 'runs'}", "experiment=stopping", "train.epochs=10000",
        "train.patience=10000", "train.batch_size=4", "train.samples_per_track=4",
        "train.seq_dur=1.0", "train.nfft=512", "train.nhop=128", "train.hidden_size=16",
    ]  # fmt: skip
    log = tmp_path / "command.log"
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", flow, *args]
    for override in overrides:
        command += ["--set", override]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own job, as in a terminal
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `cmd &` does
        )
    return process, log


def stop_and_check(process: subprocess.Popen, log: Path, signum: int) -> int:
    """Send ``signum`` to the command alone; its exit code once it and its processes are gone."""
    family = psutil.Process(process.pid).children(recursive=True)
    (server,) = [p for p in family if "pipelines.prefect_server" in p.cmdline()]
    os.kill(process.pid, signum)
    start = time.monotonic()
    try:
        code = process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_SECONDS} s after {signum!r}:\n{log.read_text()}")
    gone, alive = psutil.wait_procs(family, timeout=STOP_SECONDS - (time.monotonic() - start))
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    assert server in gone
    return code


def wait_for(condition, what: str, log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def flow_run_states(prefect_home: Path) -> list[str]:
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        return [row[0] for row in db.execute("select state_type from flow_run")]


@pytest.mark.slow
def test_the_temporary_server_stops_when_its_command_is_gone(prefect_home: Path):
    """The server's stdin is a pipe from its command; EOF (the command died) stops it."""
    port = free_port()
    server = start_server(port, {**os.environ, "PREFECT_HOME": str(prefect_home)})
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/api", server)
        server.send_signal(signal.SIGINT)  # a Ctrl-C meant for the command does not stop it
        time.sleep(1)
        assert server.poll() is None
        server.stdin.close()  # what the kernel does when the command dies, even by SIGKILL
        assert server.wait(timeout=STOP_SECONDS) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_stops_the_run_and_leaves_no_process(
    signum: int, synth_root: Path, tmp_path: Path, prefect_home: Path
):
    process, log = start("training", synth_root, tmp_path, prefect_home)
    try:
        # training is under way: its second epoch has started
        wait_for(lambda: "epoch 2:" in log.read_text(), "second epoch", log)
        code = stop_and_check(process, log, signum)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    if signum == signal.SIGKILL:
        return  # nothing can clean up after SIGKILL; the server noticed and stopped
    assert code == 130, log.read_text()
    assert "aborted" in log.read_text()
    client = MlflowClient()
    experiment = client.get_experiment_by_name("stopping")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2  # the flow's parent run and the vocals training
    assert {run.info.status for run in runs} == {"KILLED"}
    assert flow_run_states(prefect_home) == ["CRASHED"]


@pytest.mark.slow
def test_sigterm_stops_tuning_and_its_worker_processes(
    synth_root: Path, tmp_path: Path, prefect_home: Path
):
    space = [
        "tune.space.hidden_size=[16]", "tune.space.batch_size=[4]",
        "tune.space.samples_per_track=[4]", "tune.enqueue=[]", "tune.pruner=none",
        f"tune.storage=sqlite:///{tmp_path / 'optuna.db'}",
    ]  # fmt: skip
    args = ["--trials", "2", "--workers", "2", "--epochs", "10000"]
    for setting in space:
        args += ["--set", setting]
    process, log = start("tuning", synth_root, tmp_path, prefect_home, *args)
    client = MlflowClient()

    def trials_training() -> bool:
        experiment = client.get_experiment_by_name("stopping")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        return sum("valid_loss" in run.data.metrics for run in runs) == 2

    try:
        wait_for(trials_training, "two trials past their first epoch", log)
        workers = [
            p
            for p in psutil.Process(process.pid).children()
            if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        code = stop_and_check(process, log, signal.SIGTERM)  # kill PID: only the command gets it
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert code == 130, log.read_text()
    runs = client.search_runs([client.get_experiment_by_name("stopping").experiment_id])
    assert len(runs) == 3  # the study's parent run and two trials
    assert {run.info.status for run in runs} == {"KILLED"}
    assert flow_run_states(prefect_home) == ["CRASHED"]
