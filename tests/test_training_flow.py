"""The ``training`` flow end to end on tiny synthetic data, in a real Prefect test server."""

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun

from pipelines.commands.run_training import format_summary
from pipelines.training import training
from unmixlab.errors import UnmixlabError

pytestmark = pytest.mark.slow  # Prefect flows: not a unit test


@pytest.fixture
def tiny(synth_root: Path, tmp_path: Path) -> list[str]:
    """Overrides shrinking the quickstart preset to the shared 4 s test tracks."""
    return [
        f"data.root={synth_root}", "data.synth=null", f"data.cache_dir={tmp_path / 'cache'}",
        "train.epochs=2", "train.batch_size=4", "train.samples_per_track=4",
        "train.seq_dur=1.0", "train.nfft=512", "train.nhop=128", "train.hidden_size=16",
        "train.sample_rate=16000", "train.bandwidth=8000", "train.seed=0",
        "evaluate.workers=1", "experiment=flow",
    ]  # fmt: skip


def task_runs(flow_run_id: UUID, expected: int, timeout: float = 30.0) -> dict[str, TaskRun]:
    """The flow run's task runs by task name, once the server has recorded ``expected``."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            final = [run for run in runs if run.state is not None and run.state.is_final()]
            if len(final) >= expected or time.monotonic() > deadline:
                return {run.name.rsplit("-", 1)[0]: run for run in final}
            time.sleep(0.5)


@pytest.mark.slow
def test_training_flow_end_to_end_then_reuses_the_prepared_data(
    prefect_harness: None, tiny: list[str]
):
    state = training(
        preset="quickstart", overrides=[*tiny, "targets=[vocals, drums]"], return_state=True
    )
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary.prepare_state == "Completed"

    client = MlflowClient()
    experiment = client.get_experiment_by_name("flow")
    for target in ("vocals", "drums"):
        (run,) = client.search_runs([experiment.experiment_id], f"tags.target = '{target}'")
        assert run.info.run_id == summary.targets[target].trained.run_id
        assert run.data.tags["mlflow.parentRunId"] == summary.parent_run_id
        history = client.get_metric_history(run.info.run_id, "valid_loss")
        assert [m.step for m in history] == [1, 2]
        assert {f"test_{m}_{target}" for m in ("sdr", "sir", "sar", "isr")} <= set(run.data.metrics)
        champion = client.get_model_version_by_alias(f"unmixlab-{target}", "champion")
        assert champion.run_id == run.info.run_id
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "test_sdr_vocals" in parent.data.metrics

    printed = format_summary(summary)
    assert "vocals" in printed and "unmixlab-drums v1" in printed
    assert f"mlflow ui --backend-store-uri {client.tracking_uri}" in printed

    flow_run_id = state.state_details.flow_run_id
    tasks = task_runs(flow_run_id, expected=8)
    assert tasks["prepare_data"].state.name == "Completed"
    with get_client(sync_client=True) as prefect:
        (artifact,) = prefect.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    assert artifact.type == "markdown"
    assert "| vocals |" in artifact.data and f"/runs/{summary.parent_run_id}" in artifact.data

    again = training(
        preset="quickstart", overrides=[*tiny, "targets=[vocals, drums]"], return_state=True
    )
    assert again.is_completed(), again.message
    assert again.result().prepare_state == "Cached"
    tasks = task_runs(again.state_details.flow_run_id, expected=8)
    assert tasks["prepare_data"].state.name == "Cached"
    assert tasks["train"].state.is_completed()


@pytest.mark.slow
def test_two_targets_check_and_decode_the_data_once_and_a_loss_promotes_the_lower(
    prefect_harness: None, tiny: list[str], monkeypatch: pytest.MonkeyPatch
):
    import unmixlab.data.cache
    import unmixlab.prepare
    import unmixlab.steps.prepare

    calls: dict[str, int] = {}

    def counted(module: object, name: str) -> None:
        real = getattr(module, name)

        def spy(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    counted(unmixlab.steps.prepare, "prepare")
    counted(unmixlab.prepare, "check_channels")
    counted(unmixlab.data.cache, "_decode_all")
    by_loss = [*tiny, "evaluate.enabled=false", "promote.metric=best_valid_loss"]
    first = training(preset="quickstart", overrides=[*by_loss, "targets=[vocals, drums]"])
    assert calls == {"prepare": 1, "check_channels": 4, "_decode_all": 1}  # 4 train tracks

    # a second vocals model that cannot learn: its loss is higher, so it must not win
    worse = training(preset="quickstart", overrides=[*by_loss, "train.lr=1e-12"])
    good, bad = first.targets["vocals"].trained, worse.targets["vocals"].trained
    assert bad.best_valid_loss > good.best_valid_loss
    champion = MlflowClient().get_model_version_by_alias("unmixlab-vocals", "champion")
    assert champion.run_id == good.run_id
    assert worse.targets["vocals"].promotion.promoted is False


def test_a_bad_root_fails_the_flow_at_prepare_data(
    prefect_harness: None, tiny: list[str], tmp_path: Path
):
    state = training(
        preset="quickstart", overrides=[*tiny, f"data.root={tmp_path / 'nowhere'}"],
        return_state=True,
    )  # fmt: skip
    assert state.is_failed()
    with pytest.raises(UnmixlabError, match="nowhere: data root does not exist"):
        state.result()
    tasks = task_runs(state.state_details.flow_run_id, expected=1)
    assert set(tasks) == {"prepare_data"} and tasks["prepare_data"].state.is_failed()
    assert MlflowClient().get_experiment_by_name("flow") is None  # nothing was tracked


def test_run_training_command_refuses_a_mistyped_key_in_one_line():
    result = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "run", "training",
         "--set", "train.hiden_size=32"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert "unknown setting 'train.hiden_size'" in lines[0]


class FlakyProxy:
    """A loopback TCP proxy that resets its first connection (a network blip), then forwards."""

    def __init__(self, port: int):
        self.port_to = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reset = 0
        self.forwarded = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if self.reset == 0:
                self.reset += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # RST: the client sees "connection reset by peer"
                continue
            self.forwarded += 1
            upstream = socket.create_connection(("127.0.0.1", self.port_to))
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def mlflow_server(mlflow_database: Path, tmp_path: Path) -> Iterator[int]:
    """A real MLflow tracking server on loopback (SQLite, proxied local artifacts); its port."""
    from test_tracking_outage import MlflowServer

    server = MlflowServer(tmp_path / "server", mlflow_database)
    server.start()
    try:
        yield int(server.uri.rsplit(":", 1)[1])
    finally:
        server.kill()


@pytest.mark.slow
def test_a_tracking_server_blip_is_retried_and_the_flow_completes(
    prefect_harness: None,
    tiny: list[str],
    mlflow_server: int,
    monkeypatch: pytest.MonkeyPatch,
):
    proxy = FlakyProxy(mlflow_server)
    uri = f"http://127.0.0.1:{proxy.port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    try:
        overrides = [*tiny, "evaluate.enabled=false", "promote.enabled=false"]
        state = training(preset="quickstart", overrides=overrides, return_state=True)
    finally:
        proxy.close()
    assert state.is_completed(), state.message
    assert proxy.reset == 1 and proxy.forwarded > 0
    tasks = task_runs(state.state_details.flow_run_id, expected=4)
    assert tasks["start_parent_run"].run_count == 2  # failed once, retried
    assert tasks["train"].run_count == 1
    summary = state.result()
    client = MlflowClient(uri)
    run = client.get_run(summary.targets["vocals"].trained.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_loss")] == [1, 2]
    assert client.get_run(summary.parent_run_id).info.status == "FINISHED"
