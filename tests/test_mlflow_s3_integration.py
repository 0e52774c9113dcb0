"""A real MLflow server whose artifacts go to a real S3-compatible server (moto) on loopback.

The client (``unmixlab train``) gets only ``MLFLOW_TRACKING_URI``: the server holds the S3
keys and proxies the uploads.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from mlflow import MlflowClient
from tiny import PER_EPOCH_METRICS

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.tracking.runs import flatten, train_tracked
from unmixlab.tracking.setup import HEALTH_TIMEOUT_SECONDS, ensure_tracking_reachable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "unmixlab-artifacts"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# client-side settings that would let it reach S3 by itself, or another store
CLIENT_DROPS = ("AWS_", "MLFLOW_", "UNMIXLAB_ARTIFACTS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], health: str, log: Path) -> subprocess.Popen:
    """Start a server in its own process group; return once ``health`` answers 200."""
    stream = log.open("w")
    process = subprocess.Popen(
        command, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True
    )
    stream.close()
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(health, timeout=2).status_code == 200:
                    return process
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{health} did not answer in 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """Terminate a server and its workers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def s3(endpoint: str):
    """A boto3 S3 client of the moto server."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    })  # fmt: skip


class MotoServer:
    """moto in server mode on a fixed loopback port, holding the (empty) bucket."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        env = {**os.environ, **S3_KEYS}
        self.process = start(command, env, f"{self.endpoint}/moto-api/", self.folder / "moto.log")
        try:
            s3(self.endpoint).create_bucket(Bucket=BUCKET)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The S3-compatible server, stopped when the module's tests are done."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_endpoint(moto: MotoServer) -> str:
    """The S3 endpoint URL."""
    return moto.endpoint


@pytest.fixture(scope="module")
def tracking_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on SQLite, proxying artifacts to s3://BUCKET/mlflow on moto."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(CLIENT_DROPS)},
        **S3_KEYS,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{BUCKET}/mlflow",
        "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = start(command, env, f"{uri}/health", folder / "server.log")
    try:
        yield uri
    finally:
        stop(process)


def test_cli_training_lands_in_server_and_bucket(
    tracking_server: str, s3_endpoint: str, tiny_config: TrainConfig
):
    args = ["--root", str(tiny_config.data.root), "--is-wav", "--epochs", "2", "--batch-size", "4",
            "--samples-per-track", "4", "--seq-dur", "1", "--nfft", "512", "--nhop", "128",
            "--hidden-size", "16", "--sample-rate", "16000", "--bandwidth", "8000",
            "--seed", "0", "--output", str(tiny_config.run.output),
            "--cache-dir", str(tiny_config.data.cache_dir)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLIENT_DROPS)}
    env["MLFLOW_TRACKING_URI"] = tracking_server
    unmixlab = shutil.which("unmixlab", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [unmixlab, "train", *args, "--experiment", "s3-integration", "--run-name", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = json.loads((tiny_config.run.output / "vocals.mlflow.json").read_text())[
        "mlflow_run_id"
    ]
    assert run_id in done.stdout

    keys = [o["Key"] for o in s3(s3_endpoint).list_objects_v2(Bucket=BUCKET)["Contents"]]
    run_keys = {key.split(f"/{run_id}/artifacts/", 1)[1] for key in keys if run_id in key}
    assert {
        "plots/loss_curves.png",
        "model_files/vocals.pth",
        "model_files/vocals.json",
        "model_files/separator.json",
        "checkpoints/vocals.chkpnt",
    } <= run_keys
    client = MlflowClient(tracking_server)
    run = client.get_run(run_id)
    model_id = run.outputs.model_outputs[0].model_id
    assert any(key.endswith(f"{model_id}/artifacts/MLmodel") for key in keys)

    assert run.info.status == "FINISHED"
    assert run.data.params == flatten(tiny_config.flat())
    for key in PER_EPOCH_METRICS:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2], key
    assert run.data.metrics["training_seconds"] > 0


def test_unreachable_server_fails_fast_naming_it(monkeypatch: pytest.MonkeyPatch):
    port = free_port()  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    probes = []
    get = requests.get

    def counted(url: str, **kwargs):  # the real requests.get, counted
        probes.append((url, kwargs.get("timeout")))
        return get(url, **kwargs)

    monkeypatch.setattr(requests, "get", counted)
    with pytest.raises(UnmixlabError, match=f"127.0.0.1:{port}"):
        ensure_tracking_reachable(uri)
    # fails fast: one bounded probe, no retries (counted, not timed: load stretches time)
    assert probes == [(f"{uri}/health", HEALTH_TIMEOUT_SECONDS)]


def test_failed_artifact_upload_marks_run_failed(
    s3_endpoint: str, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    for key, value in S3_KEYS.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient()
    client.create_experiment("no-bucket", artifact_location="s3://no-such-bucket/mlflow")
    with pytest.raises(Exception, match="NoSuchBucket|does not exist"):
        train_tracked(tiny_config.updated(epochs=1), experiment="no-bucket")
    (run,) = client.search_runs([client.get_experiment_by_name("no-bucket").experiment_id])
    assert run.info.status == "FAILED"
    assert "error" in run.data.tags
    assert run.data.metrics["training_seconds"] > 0  # trained, then the upload failed


def test_upload_is_retried_through_an_s3_outage(
    moto: MotoServer, tracking_server: str, tmp_path: Path
):
    client = MlflowClient(tracking_server)
    run_id = client.create_run(client.create_experiment("outage")).info.run_id
    payload = tmp_path / "vocals.chkpnt"
    payload.write_bytes(os.urandom(1 << 16))
    attempts: list[float] = []
    errors: list[BaseException] = []

    def refuse(outage: socket.socket) -> None:
        while True:
            try:
                connection, _ = outage.accept()
            except OSError:  # closed: the outage is over
                return
            attempts.append(time.monotonic())
            connection.close()

    def upload() -> None:
        try:
            client.log_artifact(run_id, str(payload), "checkpoints")
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    moto.stop()
    # the outage: S3's port resets every connection until moto is back
    outage = socket.create_server(("127.0.0.1", moto.port))
    try:
        threading.Thread(target=refuse, args=(outage,), daemon=True).start()
        uploader = threading.Thread(target=upload)
        uploader.start()
        deadline = time.monotonic() + 60
        while not attempts and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        outage.close()
        moto.start()
    uploader.join(timeout=240)
    assert attempts, "the upload never reached S3"
    assert not uploader.is_alive() and not errors, errors
    key = f"{run_id}/artifacts/checkpoints/vocals.chkpnt"
    stored = [o["Key"] for o in s3(moto.endpoint).list_objects_v2(Bucket=BUCKET)["Contents"]]
    (found,) = [k for k in stored if k.endswith(key)]
    body = s3(moto.endpoint).get_object(Bucket=BUCKET, Key=found)["Body"].read()
    assert body == payload.read_bytes()
