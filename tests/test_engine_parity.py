"""One preset, two engines: the Prefect ``training`` flow and ``unmixlab kubeflow run-local``.

Both call the same steps, so each training run logs the same params and metrics, is scored
with the same evaluate settings, and is promoted by the same rule. A training whose metrics
the tracking server did not take fails its step on both.
"""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import soundfile as sf
from mlflow import MlflowClient

pytest.importorskip("kfp")

from components.runtime import is_transient  # noqa: E402
from components.train import train  # noqa: E402
from pipelines.training import training  # noqa: E402
from unmixlab.config import TrainConfig  # noqa: E402
from unmixlab.prepare import prepare  # noqa: E402
from unmixlab.steps.train import MetricsUnsent  # noqa: E402

pytestmark = pytest.mark.slow  # two whole pipelines: not a unit test

CLI = [sys.executable, "-c", "from pipelines.cli import main; main()"]
# the evaluate settings under test: each must reach both engines' scoring
EVALUATE = {"residual": "True", "excerpt_seconds": "2.0", "excerpt_start": "1.0", "device": "cpu"}


def tiny(root: Path, cache: Path, experiment: str) -> list[str]:
    """The quickstart preset shrunk to the shared 4 s tracks, with the evaluate settings."""
    return [
        f"data.root={root}", "data.synth=null", f"data.cache_dir={cache}",
        "train.epochs=2", "train.batch_size=4", "train.samples_per_track=4",
        "train.seq_dur=1.0", "train.nfft=512", "train.nhop=128", "train.hidden_size=16",
        "train.sample_rate=16000", "train.bandwidth=8000", "train.seed=0",
        "evaluate.workers=1", f"experiment={experiment}",
        *(f"evaluate.{key}={value}" for key, value in EVALUATE.items()),
    ]  # fmt: skip


def run_local(overrides: list[str], outputs: Path, data: Path, env: dict[str, str]):
    """``unmixlab kubeflow run-local`` of the quickstart preset on ``data``."""
    command = [*CLI, "kubeflow", "run-local", "--preset", "quickstart", "--outputs", str(outputs)]
    command += ["--data-uri", str(data)]
    for override in overrides:
        command += ["--set", override]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def names(client: MlflowClient, run_id: str) -> tuple[set[str], set[str]]:
    """A run's param names and metric names (MLflow's own system metrics left out)."""
    data = client.get_run(run_id).data
    metrics = {name for name in data.metrics if not name.startswith("system/")}
    return set(data.params), metrics


def scored(client: MlflowClient, run_id: str, tmp_path: Path) -> tuple[dict, list[str], float]:
    """How a run was scored: its evaluate tags, the scored stems, one excerpt's length."""
    tags = {k: v for k, v in client.get_run(run_id).data.tags.items() if k.startswith("evaluate.")}
    folder = Path(client.download_artifacts(run_id, "evaluation", str(tmp_path)))
    rows = (folder / "scores.csv").read_text().splitlines()
    excerpt = next((folder / "listen").rglob("vocals.mp3"))
    return tags, [row.split(",")[0] for row in rows[1:]], sf.info(excerpt).duration


def test_prefect_and_kubeflow_log_score_and_promote_the_same(
    prefect_harness: None, synth_root: Path, tmp_path: Path, isolated_mlflow: str
):
    flow = training(preset="quickstart", overrides=tiny(synth_root, tmp_path / "cache", "parity"))
    prefect = MlflowClient(isolated_mlflow)
    prefect_run = flow.targets["vocals"].trained.run_id

    kfp_uri = f"sqlite:///{tmp_path / 'kfp.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": kfp_uri, "MLFLOW_REGISTRY_URI": kfp_uri}
    env["UNMIXLAB_ARTIFACTS"] = str(tmp_path / "kfp-artifacts")
    overrides = tiny(synth_root, tmp_path / "kfp-cache", "parity")
    result = run_local(overrides, tmp_path / "kfp", synth_root, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    kubeflow = MlflowClient(kfp_uri, registry_uri=kfp_uri)
    (kfp_run,) = kubeflow.search_runs(
        [kubeflow.get_experiment_by_name("parity").experiment_id], "tags.target = 'vocals'"
    )

    prefect_params, prefect_metrics = names(prefect, prefect_run)
    kfp_params, kfp_metrics = names(kubeflow, kfp_run.info.run_id)
    assert prefect_params == kfp_params
    assert prefect_metrics == kfp_metrics
    assert {"train_loss", "valid_loss", "lr", "epoch_seconds", "test_sdr_vocals"} <= kfp_metrics

    prefect_scoring = scored(prefect, prefect_run, tmp_path / "prefect-eval")
    kfp_scoring = scored(kubeflow, kfp_run.info.run_id, tmp_path / "kfp-eval")
    assert prefect_scoring[0] == kfp_scoring[0]  # every evaluate setting, the same
    assert {f"evaluate.{k}": v for k, v in EVALUATE.items()}.items() <= kfp_scoring[0].items()
    assert prefect_scoring[1] == kfp_scoring[1] == ["vocals", "accompaniment"]  # residual
    assert prefect_scoring[2] == pytest.approx(kfp_scoring[2], abs=0.05)
    assert kfp_scoring[2] == pytest.approx(2.0, abs=0.1)  # excerpt_seconds, not the default

    promotion = flow.targets["vocals"].promotion  # each engine's store: a first champion
    version = kubeflow.get_model_version_by_alias("unmixlab-vocals", "champion")
    assert version.run_id == kfp_run.info.run_id
    assert prefect.get_model_version_by_alias("unmixlab-vocals", "champion").run_id == prefect_run
    assert promotion.promoted and version.tags["promotion.decision"] == promotion.decision

    # what only Kubeflow adds: its tag, and the artifacts its UI shows (model folder, scores)
    assert kfp_run.data.tags["orchestrator"] == "kubeflow"
    (evaluate,) = (tmp_path / "kfp").glob("*/for-loop-*/evaluate-model/executor_output.json")
    (scores,) = json.loads(evaluate.read_text())["artifacts"]["scores"]["artifacts"]
    assert scores["metadata"]["sdr_vocals"] == pytest.approx(
        kfp_run.data.metrics["test_sdr_vocals"]
    )
    (model,) = (tmp_path / "kfp").glob("*/for-loop-*/train-target/model")
    assert {"vocals.pth", "vocals.json", "separator.json"} <= {p.name for p in model.iterdir()}


class MetricsDropper:
    """A loopback proxy to an MLflow server that goes silent once epoch metrics are sent.

    It forwards everything (health checks, the run, its params) until a request carries
    ``train_loss``; then it drops that connection and refuses every later one, as a
    tracking server lost mid-training would.
    """

    def __init__(self, port: int):
        self.port_to = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.dropped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.dropped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port_to))
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while data := src.recv(65536):
                if watch and b"train_loss" in data:
                    self.dropped.set()
                    self.server.close()  # later connections are refused
                if self.dropped.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass


@pytest.fixture
def mlflow_server(mlflow_database: Path, tmp_path: Path):
    from test_tracking_outage import MlflowServer

    server = MlflowServer(tmp_path / "server", mlflow_database)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.integration
def test_unsent_metrics_fail_the_train_step_on_both_engines(
    mlflow_server, synth_root: Path, tiny_config: TrainConfig, tmp_path: Path, monkeypatch
):
    prefect_proxy = MetricsDropper(int(mlflow_server.uri.rsplit(":", 1)[1]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{prefect_proxy.port}")
    with pytest.raises(MetricsUnsent, match="did not answer") as unsent:
        train.fn(tiny_config, prepare(tiny_config.data), "unsent-prefect")
    assert prefect_proxy.dropped.is_set()
    assert is_transient(unsent.value)  # Prefect retries it, and the retry resumes

    kfp_proxy = MetricsDropper(int(mlflow_server.uri.rsplit(":", 1)[1]))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{kfp_proxy.port}"}
    result = run_local(
        tiny(synth_root, tmp_path / "kfp-cache", "unsent"), tmp_path / "kfp", synth_root, env
    )
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "did not answer" in output and "train-target" in output
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("unsent").experiment_id])
    assert run.info.status == "RUNNING" and "model_uri" not in run.data.tags  # never promoted
