"""Run logging on a temporary SQLite store: params, metrics, tags, input, artifacts, statuses."""

import json
import subprocess
import threading
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from tiny import PER_EPOCH_METRICS

from unmixlab.config import TrainConfig
from unmixlab.device import resolve_device
from unmixlab.errors import UnmixlabError
from unmixlab.prepare import prepare
from unmixlab.tracking.links import artifact_url, run_url, runs_table_url, ui_base
from unmixlab.tracking.plots import loss_figure
from unmixlab.tracking.runs import flatten, run_file, train_tracked
from unmixlab.tracking.setup import (
    ensure_tracking_reachable,
    get_or_create_experiment,
    resolve_tracking_uri,
)
from unmixlab.trainer import History, TrainingCallback

pytestmark = pytest.mark.slow  # trainings tracked in MLflow: not a unit test


class Raise(TrainingCallback):
    """Raises ``error`` at the end of epoch ``epoch``."""

    def __init__(self, error: BaseException, epoch: int = 1):
        self.error, self.epoch = error, epoch

    def on_epoch_end(self, trainer, record) -> None:
        if record.epoch == self.epoch:
            raise self.error


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_default_store_is_sqlite_in_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_targets_in_threads_log_everything_under_one_parent(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # a run shorter than one sampling interval records no system metrics: sample often
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    client = MlflowClient()
    experiment_id = get_or_create_experiment(client, "parallel")
    parent = client.create_run(experiment_id, run_name="both targets").info.run_id
    drums = tiny_config.updated(target="drums", cache_dir=tmp_path / "cache2")
    tracked, errors = {}, []

    def run(config: TrainConfig) -> None:
        try:
            tracked[config.run.target] = train_tracked(
                config,
                experiment="parallel",
                parent_run_id=parent,
                preset="tiny",
                log_model=config.run.target == "vocals",  # drums: files only, as tuning trials
            )
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(c,)) for c in (tiny_config, drums)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    for target, config in (("vocals", tiny_config), ("drums", drums)):
        run_info = client.get_run(tracked[target].run_id)
        assert run_info.info.status == "FINISHED"
        assert run_info.info.experiment_id == experiment_id
        assert run_info.data.tags[MLFLOW_PARENT_RUN_ID] == parent
        assert run_info.data.tags["target"] == target
        assert run_info.data.tags["device"] == str(resolve_device(config.run.device))
        assert run_info.data.tags["torch_version"] == torch.__version__
        assert ("gpu_name" in run_info.data.tags) == torch.cuda.is_available()
        assert run_info.data.params == flatten(config.flat())

    run_id = tracked["vocals"].run_id
    run = client.get_run(run_id)
    result = tracked["vocals"].result
    for key in PER_EPOCH_METRICS:
        assert steps(client, run_id, key) == [1, 2], key
    history = client.get_metric_history(run_id, "valid_loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        result.history.valid_loss
    )
    assert run.data.metrics["training_seconds"] == pytest.approx(result.training_seconds)
    assert run.data.metrics["best_valid_loss"] == pytest.approx(result.best_loss)
    assert run.data.metrics["best_epoch"] == result.history.best_epoch
    for key in ("training_seconds", "best_valid_loss", "best_epoch", "epochs_trained"):
        assert steps(client, run_id, key) == [0], key  # summary values: bars, not one-dot lines
    assert any(key.startswith("system/") for key in run.data.metrics), run.data.metrics

    fingerprint = prepare(tiny_config.data).fingerprint
    tags = run.data.tags
    assert tags["dataset_fingerprint"] == fingerprint
    assert tags["preset"] == "tiny"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    if head.returncode == 0:
        assert tags["git_commit"] == head.stdout.strip()
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == fingerprint
    assert dataset_input.dataset.name == Path(tiny_config.data.root).name
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == 4  # 3 train + 1 valid
    assert {(t.key, t.value) for t in dataset_input.tags} == {("mlflow.data.context", "training")}

    listed = {
        a.path
        for d in ("plots", "model_files", "checkpoints")
        for a in client.list_artifacts(run_id, d)
    }
    assert listed == {
        "plots/loss_curves.png",
        "model_files/vocals.pth",
        "model_files/vocals.json",
        "model_files/separator.json",
        "checkpoints/vocals.chkpnt",
    }
    png = Path(client.download_artifacts(run_id, "plots/loss_curves.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    separator = json.loads(
        Path(
            client.download_artifacts(run_id, "model_files/separator.json", str(tmp_path))
        ).read_text()
    )
    assert separator["targets"] == ["vocals"]  # drums shares the output folder, not the model
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    (model_output,) = run.outputs.model_outputs
    assert tracked["vocals"].model_uri == f"models:/{model_output.model_id}"
    assert run.data.tags["model_uri"] == tracked["vocals"].model_uri

    # without the pyfunc model: the model folder and checkpoint still, no model, no model_uri
    drums_run = client.get_run(tracked["drums"].run_id)
    assert tracked["drums"].model_uri is None and "model_uri" not in drums_run.data.tags
    assert not drums_run.outputs or not drums_run.outputs.model_outputs
    assert {a.path for a in client.list_artifacts(drums_run.info.run_id, "model_files")} == {
        "model_files/drums.pth",
        "model_files/drums.json",
        "model_files/separator.json",
    }
    assert [a.path for a in client.list_artifacts(drums_run.info.run_id, "checkpoints")] == [
        "checkpoints/drums.chkpnt"
    ]
    assert json.loads(run_file(tiny_config).read_text())["mlflow_run_id"] == run_id


def test_interrupted_run_is_killed_and_resume_continues_it(tiny_config: TrainConfig):
    client = MlflowClient()
    with pytest.raises(KeyboardInterrupt):
        train_tracked(tiny_config, run_name="interrupted", callbacks=[Raise(KeyboardInterrupt())])
    run_id = json.loads(run_file(tiny_config).read_text())["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert steps(client, run_id, "train_loss") == [1]

    tracked = train_tracked(tiny_config.updated(epochs=3), resume=True)
    assert tracked.run_id == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert steps(client, run_id, "train_loss") == [1, 2, 3]
    assert run.data.params["epochs"] == "2"  # params are immutable; the change is a tag
    assert run.data.tags["resumed.epochs"] == "3"
    assert run.data.metrics["training_seconds"] == pytest.approx(tracked.result.training_seconds)


def test_raising_run_is_failed_with_the_error(tiny_config: TrainConfig):
    with pytest.raises(RuntimeError, match="boom"):
        train_tracked(tiny_config.updated(epochs=1), callbacks=[Raise(RuntimeError("boom"))])
    (run,) = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("unmixlab").experiment_id]
    )
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: boom"
    assert run.data.metrics["train_loss"] > 0  # the epoch before the error was logged


def test_unreachable_server_stops_before_training(
    tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
):
    uri = "http://127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(UnmixlabError, match="127.0.0.1:9"):
        train_tracked(tiny_config)
    # stopped before anything else began (an order, not a duration that load stretches)
    assert not Path(tiny_config.run.output).exists()
    assert not Path(tiny_config.data.cache_dir).exists()


def test_missing_sqlite_folder_is_reported(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    with pytest.raises(UnmixlabError, match="nowhere"):
        ensure_tracking_reachable(uri)


def test_links_use_the_real_ui_address_and_never_credentials(monkeypatch):
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    local = "sqlite:////tmp/mlflow.db"
    assert run_url(local, "3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    server = "https://alice:s3cret@mlflow.example.org:8443/"
    assert ui_base(server) == "https://mlflow.example.org:8443"
    monkeypatch.setenv("MLFLOW_UI_URL", "http://bob:pw@127.0.0.1:5055/mlflow/")
    assert run_url(local, "3", "abc") == "http://127.0.0.1:5055/mlflow/#/experiments/3/runs/abc"
    assert runs_table_url(local, "3", "test_sdr_vocals") == (
        "http://127.0.0.1:5055/mlflow/#/experiments/3/runs"
        "?orderByKey=metrics.%60test_sdr_vocals%60&orderByAsc=false"
    )
    assert artifact_url(server, "abc", "evaluation/listen/a b/x.mp3") == (
        "http://127.0.0.1:5055/mlflow/get-artifact"
        "?path=evaluation%2Flisten%2Fa%20b%2Fx.mp3&run_uuid=abc"
    )


def test_loss_figure_is_titled_by_run_with_plain_ticks_lr_panel_and_best_epoch():
    history = History(
        train_loss=[9.0, 7.0, 5.5, 4.5, 3.5, 3.0], valid_loss=[8.0, 6.5, 5.0, 4.2, 4.0, 4.1],
        lr=[1e-3, 1e-3, 1e-3, 3e-4, 3e-4, 3e-4], epoch_seconds=[1.0] * 6,
        best_loss=4.0, best_epoch=5,
    )  # fmt: skip
    figure = loss_figure(history, "quickstart · vocals · h16 b4 · seed 0")
    figure.draw_without_rendering()
    loss, lr = figure.axes
    assert loss.get_title() == "quickstart · vocals · h16 b4 · seed 0"
    assert list(lr.lines[0].get_ydata()) == history.lr and lr.get_ylabel() == "learning rate"
    labels = [
        t.get_text()
        for axes in (loss, lr)
        for t in axes.yaxis.get_ticklabels(which="both")
        if t.get_visible() and t.get_text()
    ]
    assert "6" in labels and "0.001" in labels, labels
    assert not any("times" in label or "^" in label for label in labels), labels  # no 6×10^0
    assert "best valid 4 (epoch 5)" in [t.get_text() for t in loss.get_legend().get_texts()]
    assert [int(t) for t in lr.get_xticks() if 1 <= t <= 6] == [1, 2, 3, 4, 5, 6]
