"""The Prefect tasks' bodies, called through ``.fn`` (no Prefect server needed)."""

import os
import shutil
import socket
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.evaluate import evaluate
from components.parent_run import start_parent_run
from components.prepare_data import data_key, prepare_data
from components.promote import promote
from components.runtime import is_transient
from components.synthesize import synthesize
from components.train import train
from unmixlab.config import DataConfig, TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.experiment import load_preset
from unmixlab.prepare import prepare
from unmixlab.step_settings import EvaluateSettings, PromoteSettings
from unmixlab.steps.train import MetricsUnsent
from unmixlab.synth import SynthSettings
from unmixlab.tracking.names import NOTE_TAG
from unmixlab.tracking.setup import ensure_tracking_reachable

pytestmark = pytest.mark.slow  # Prefect tasks that train: not a unit test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_prepare_data_builds_the_cache_and_its_key_follows_the_data(
    synth_root: Path, tiny_config: TrainConfig, tmp_path: Path
):
    root = shutil.copytree(synth_root, tmp_path / "musdb")
    config = tiny_config.updated(root=root)
    key = data_key(None, {"config": config.data})
    prepared = prepare_data.fn(config.data)
    assert (prepared.cache_folder / "index.json").is_file()
    assert prepared.cache_folder.name == prepared.fingerprint
    assert len(prepared.train_tracks) == 3 and len(prepared.valid_tracks) == 1

    assert data_key(None, {"config": config.data}) == key  # the same data: a cache hit
    other_training = config.updated(epochs=50, hidden_size=32)
    assert data_key(None, {"config": other_training.data}) == key
    assert data_key(None, {"config": config.updated(nb_channels=1).data}) != key
    stem = next((root / "train").iterdir()) / "vocals.wav"
    os.utime(stem, ns=(stem.stat().st_atime_ns, stem.stat().st_mtime_ns + 10**9))
    assert data_key(None, {"config": config.data}) != key  # a changed source file


def test_prepare_data_refuses_a_bad_root(tiny_config: TrainConfig, tmp_path: Path):
    config = tiny_config.updated(root=tmp_path / "missing")
    with pytest.raises(UnmixlabError, match="data root does not exist"):
        prepare_data.fn(config.data)


def test_synthesize_makes_the_data_set_once(tmp_path: Path):
    settings = SynthSettings(tracks=1, seconds=1.0, sample_rate=8000, test_tracks=1)
    root = synthesize.fn(tmp_path / "data", settings)
    first = sorted(p.stat().st_mtime_ns for p in root.rglob("*.wav"))
    assert len(first) == 10
    assert synthesize.fn(tmp_path / "data", settings) == root
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*.wav")) == first
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a data set")
    with pytest.raises(UnmixlabError, match="not an empty folder"):
        synthesize.fn(tmp_path / "other", settings)


def test_train_resume_evaluate_promote(synth_root: Path, tiny_config: TrainConfig, tmp_path: Path):
    prepared = prepare(tiny_config.data)
    trained = train.fn(tiny_config, prepared, "components", preset="quickstart")
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    assert run.info.run_name == "quickstart · vocals · h16 b4 · seed 0"
    assert run.data.tags[NOTE_TAG].startswith("best valid loss: ")
    history = client.get_metric_history(trained.run_id, "valid_loss")
    assert [m.step for m in history] == [1, 2] and trained.epochs_trained == 2
    assert (trained.model_dir / "vocals.pth").is_file()

    # a retry finds the earlier attempt's checkpoint: it resumes, in the same MLflow run
    longer = train.fn(tiny_config.updated(epochs=3), prepared, "components")
    assert longer.run_id == trained.run_id and longer.epochs_trained == 3
    assert [m.step for m in client.get_metric_history(trained.run_id, "valid_loss")] == [1, 2, 3]

    settings = EvaluateSettings(workers=1)
    evaluation = evaluate.fn(settings, tiny_config.data, [longer], tmp_path / "eval")
    metrics = client.get_run(trained.run_id).data.metrics
    assert metrics["test_sdr_vocals"] == pytest.approx(evaluation.aggregate["vocals"]["SDR"])
    note = client.get_run(trained.run_id).data.tags[NOTE_TAG].splitlines()
    assert note[0].startswith("best valid loss: ") and note[0].endswith(" of 3)")  # resumed
    assert note[1].startswith("training: ") and len(note) == 3  # one line each after the resume
    assert note[2] == f"SDR vocals: {metrics['test_sdr_vocals']:.2f} dB"
    assert {"test_sir_vocals", "test_sar_vocals", "test_isr_vocals"} <= set(metrics)

    promotion = promote.fn(PromoteSettings(), "components", "vocals")
    assert (promotion.model_name, promotion.version, promotion.promoted) == (
        "unmixlab-vocals",
        "1",
        True,
    )
    champion = client.get_model_version_by_alias("unmixlab-vocals", "champion")
    assert str(champion.version) == "1"


def test_connectivity_failures_are_transient_bad_input_is_not(
    monkeypatch: pytest.MonkeyPatch,
):
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UnmixlabError) as unreachable:
        ensure_tracking_reachable(down, timeout=2)
    assert is_transient(unreachable.value)

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException) as refused:
        MlflowClient(down).search_experiments()
    assert is_transient(refused.value)

    with pytest.raises(UnmixlabError) as bad_root:
        prepare_data.fn(DataConfig(root=Path("nowhere")))
    assert not is_transient(bad_root.value)
    assert not is_transient(ValueError("a bug"))

    # the train step's unsent metrics: a clear line for the CLI, a retry for Prefect
    try:
        raise MetricsUnsent("the server did not answer", "Resume") from ConnectionError("down")
    except MetricsUnsent as unsent:
        assert is_transient(unsent) and isinstance(unsent, UnmixlabError)


def test_parent_run_and_experiment_carry_the_preset_description(synth_root: Path):
    config = load_preset("quickstart", [f"data.root={synth_root}", "experiment=described"])
    parent = start_parent_run.fn(config, run_name="quickstart flow", tags={})
    again = start_parent_run.fn(
        load_preset("umx", [f"data.root={synth_root}", "experiment=described"]), "umx", {}
    )
    client = MlflowClient()
    assert client.get_run(parent.run_id).data.tags[NOTE_TAG] == config.description
    assert again.experiment_id == parent.experiment_id
    experiment_tags = client.get_experiment(parent.experiment_id).tags
    assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"  # not traces
    assert client.get_experiment(parent.experiment_id).tags[NOTE_TAG].splitlines() == [
        f"preset quickstart: {config.description}",
        f"preset umx: {load_preset('umx', [f'data.root={synth_root}']).description}",
    ]
