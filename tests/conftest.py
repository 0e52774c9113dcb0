"""Shared fixtures: tiny synthetic data, a tiny training config, isolated MLflow and Prefect."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import prefect_processes
import pytest
import tiny

from unmixlab.config import TrainConfig
from unmixlab.synth import synthesize


def pytest_configure(config: pytest.Config) -> None:
    """Put this interpreter's scripts (mlflow, unmixlab, uvicorn) first on PATH for subprocesses,
    and give the session (each xdist worker its own) a ``PREFECT_HOME`` apart from the user's."""
    scripts = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    home = tempfile.mkdtemp(prefix="unmixlab-tests-prefect-")
    os.environ["PREFECT_HOME"] = home
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))


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


@pytest.fixture(scope="session")
def mlflow_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store at the current schema, made once for the session.

    A new store runs MLflow's migrations (~1.5 s); each test gets a copy of this one instead.
    Tests of store creation (``test_writers``, ``test_infra``) use folders of their own.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("mlflow-template")
    store = SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "default-artifacts"))
    store.engine.dispose()
    return folder / "mlflow.db"


@pytest.fixture(autouse=True)
def isolated_mlflow(
    mlflow_database: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Every test tracks into its own SQLite store (a copy of the empty one, beside its
    ``tmp_path``, which stays the test's alone) and artifact folder."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copyfile(mlflow_database, store)
    uri = f"sqlite:///{store}"
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


@pytest.fixture(scope="session")
def prefect_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect server database at the current schema, made once for the session.

    A new database runs Prefect's migrations (~8 s of a server's start); each test that starts
    a server copies this one (:func:`prefect_home`), as a user's second run finds its own.
    """
    from pipelines.prefect_server import free_port, start_server, stop, wait_until_healthy

    home = tmp_path_factory.mktemp("prefect-template")
    port = free_port()
    server = start_server(port, {**os.environ, "PREFECT_HOME": str(home)})
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/api", server)
    finally:
        stop(server)
    return home / "prefect.db"


@pytest.fixture
def prefect_home(prefect_database: Path, tmp_path: Path) -> Path:
    """A ``PREFECT_HOME`` of the test's own, its database a copy of :func:`prefect_database`."""
    home = tmp_path / "prefect"
    home.mkdir()
    shutil.copyfile(prefect_database, home / "prefect.db")
    return home


@pytest.fixture
def prefect_server(prefect_home: Path, tmp_path: Path):
    """``prefect server start`` on a loopback port, with its own database; yields its env."""
    yield from prefect_processes.prefect_server(prefect_home, tmp_path / "server.log")
