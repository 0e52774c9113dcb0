"""A real ``mlflow server`` killed mid-training: the training goes on and no metric is lost."""

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from test_mlflow_s3_integration import CLIENT_DROPS, free_port, start
from tiny import PER_EPOCH_METRICS

from unmixlab.config import TrainConfig
from unmixlab.tracking.runs import train_tracked
from unmixlab.trainer import EpochRecord, Trainer, TrainingCallback

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class MlflowServer:
    """``mlflow server`` on SQLite with local proxied artifacts; restarts on the same port."""

    def __init__(self, folder: Path, database: Path):
        """``folder``'s store starts as a copy of ``database`` (an empty migrated store)."""
        self.folder = folder
        folder.mkdir()
        shutil.copyfile(database, folder / "mlflow.db")
        self.uri = f"http://127.0.0.1:{free_port()}"
        self.process = None

    def start(self) -> None:
        port = self.uri.rsplit(":", 1)[1]
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination", str(self.folder / "artifacts"),
            "--serve-artifacts", "--host", "127.0.0.1", "--port", port, "--workers", "1",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(CLIENT_DROPS)}
        self.process = start(command, env, f"{self.uri}/health", self.folder / "server.log")

    def kill(self) -> None:
        """The outage: SIGKILL, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def server(mlflow_database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = MlflowServer(tmp_path / "server", mlflow_database)
    server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    try:
        yield server
    finally:
        server.kill()


class Outage(TrainingCallback):
    """Kills the server after epoch ``kill_at``; starts it again after ``restart_at``."""

    def __init__(self, server: MlflowServer, kill_at: int, restart_at: int | None = None):
        self.server, self.kill_at, self.restart_at = server, kill_at, restart_at
        self.trained_while_down: list[int] = []  # epochs that ended with the server down

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        if self.kill_at < record.epoch <= (self.restart_at or record.epoch):
            self.trained_while_down.append(record.epoch)
        if record.epoch == self.kill_at:
            self.server.kill()
        if record.epoch == self.restart_at:
            self.server.start()


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_training_goes_on_through_an_outage_and_sends_the_metrics_later(
    server: MlflowServer, tiny_config: TrainConfig
):
    config = tiny_config.updated(epochs=5)
    outage = Outage(server, kill_at=1, restart_at=3)
    tracked = train_tracked(config, callbacks=[outage])
    assert outage.trained_while_down == [2, 3]  # training went on, in order, not blocked

    assert tracked.unsent is None
    client = MlflowClient(server.uri)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    for key in PER_EPOCH_METRICS:
        assert steps(client, tracked.run_id, key) == [1, 2, 3, 4, 5], key
    assert run.data.metrics["epochs_trained"] == 5
    assert {a.path for a in client.list_artifacts(tracked.run_id, "model_files")} >= {
        "model_files/vocals.pth"
    }


def test_outage_outlasting_training_is_said_and_resume_sends_what_is_missing(
    server: MlflowServer, tiny_config: TrainConfig
):
    config = tiny_config.updated(epochs=3)
    tracked = train_tracked(config, callbacks=[Outage(server, kill_at=1)])

    assert tracked.result.epochs_trained == 3  # every epoch trained, the model written
    assert (config.run.output / "vocals.pth").is_file()
    assert tracked.model_uri is None
    assert "did not answer" in tracked.unsent and "epochs 2-3" in tracked.unsent
    assert "--resume" in tracked.unsent

    server.start()
    client = MlflowClient(server.uri)
    assert client.get_run(tracked.run_id).info.status == "RUNNING"
    assert steps(client, tracked.run_id, "valid_loss") == [1]

    synced = train_tracked(config, resume=True)
    assert synced.run_id == tracked.run_id and synced.unsent is None
    assert synced.result.trained_nothing
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    for key in PER_EPOCH_METRICS:
        assert steps(client, tracked.run_id, key) == [1, 2, 3], key
    history = tracked.result.history
    logged = {m.step: m.value for m in client.get_metric_history(tracked.run_id, "valid_loss")}
    assert [logged[step] for step in (1, 2, 3)] == pytest.approx(history.valid_loss)
    assert synced.model_uri is not None


def test_password_in_the_uri_is_never_printed_nor_stored(
    server: MlflowServer, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch, capfd
):
    from pipelines.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri.replace("//", "//alice:s3cret@"))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    args = ["--root", tiny_config.data.root, "--is-wav", "--epochs", "1", "--batch-size", "4",
            "--samples-per-track", "4", "--seq-dur", "1", "--nfft", "512", "--nhop", "128",
            "--hidden-size", "16", "--sample-rate", "16000", "--bandwidth", "8000",
            "--output", tiny_config.run.output,
            "--cache-dir", tiny_config.data.cache_dir]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["unmixlab", "train", *map(str, args)])
    main()

    printed = capfd.readouterr()
    assert "trained vocals" in printed.out
    assert "View run" in printed.out + printed.err  # MLflow's links, printed without it
    assert "s3cret" not in printed.out + printed.err
    for path in tiny_config.run.output.iterdir():
        assert b"s3cret" not in path.read_bytes(), path
