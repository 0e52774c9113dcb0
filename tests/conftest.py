"""Shared fixtures: tiny synthetic data, a tiny training config, isolated MLflow and Prefect."""

import os
import sys
from pathlib import Path

import prefect_processes
import pytest
import tiny

from unmixlab.config import TrainConfig
from unmixlab.synth import synthesize


def pytest_configure(config: pytest.Config) -> None:
    """Put this interpreter's scripts (mlflow, unmixlab, uvicorn) first on PATH for subprocesses."""
    scripts = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MUSDB18-HQ-format folder: 4 train + 2 test tracks of 4 s at 16 kHz (shared, read-only)."""
    return synthesize(
        tmp_path_factory.mktemp("data") / "musdb",
        tracks=4,
        seconds=4.0,
        seed=7,
        sample_rate=16000,
        test_tracks=2,
    )


@pytest.fixture
def tiny_config(synth_root: Path, tmp_path: Path) -> TrainConfig:
    """A model and schedule small enough to train a few epochs in seconds."""
    return tiny.tiny_config(synth_root, tmp_path / "model", tmp_path / "cache")


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test tracks into its own SQLite store and artifact folder."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.setenv("UNMIXLAB_ARTIFACTS", str(tmp_path / "mlartifacts"))
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (it takes ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def prefect_server(tmp_path: Path):
    """``prefect server start`` on a loopback port, with its own database; yields its env."""
    yield from prefect_processes.prefect_server(tmp_path)
