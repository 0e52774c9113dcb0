"""Scaling out on a real PostgreSQL: an MLflow server and an Optuna study shared by two workers.

A throwaway PostgreSQL cluster (``scripts/postgres-test-server.sh``) holds the databases
``mlflow`` and ``optuna``. ``mlflow/start-server.sh`` serves the ``mlflow`` database with its
artifacts proxied to an S3-compatible bucket (moto on loopback). The study is created as
``unmixlab run tuning`` creates it, then two ``unmixlab tune worker`` processes — as two
machines would — join it with only the storage URL, the study name, ``PGPASSWORD`` and
``MLFLOW_TRACKING_URI``: no S3 keys. One of them may run a single trial; the other stops at
the study's global trial cap.
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg2
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from postgres import PostgresCluster, free_port, start_cluster
from test_mlflow_s3_integration import BUCKET, CLIENT_DROPS, S3_KEYS, MotoServer, s3, start, stop

from unmixlab.config import TrainConfig
from unmixlab.prepare import prepare
from unmixlab.tuning.search import start_search
from unmixlab.tuning.settings import TuneConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXPERIMENT = "postgres-integration"
STUDY = "pg-shared"
CAP = 4  # the study's global trial cap
PREFIX = "mlartifacts"  # key prefix of the proxied artifacts in the bucket


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    """The cluster, stopped and deleted when the module's tests are done."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The S3-compatible server holding the (empty) artifact bucket."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tracking_server(
    postgres: PostgresCluster, moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``mlflow/start-server.sh`` on the ``mlflow`` database, artifacts proxied to S3."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(CLIENT_DROPS)},
        **S3_KEYS,
        **postgres.env,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": moto.endpoint,
        "MLFLOW_BACKEND_STORE_URI": postgres.url("mlflow"),
        "MLFLOW_ARTIFACTS_BUCKET": BUCKET,
        "MLFLOW_ARTIFACTS_PREFIX": PREFIX,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    uri = f"http://127.0.0.1:{port}"
    command = ["bash", str(ROOT / "mlflow" / "start-server.sh")]
    process = start(command, env, f"{uri}/health", folder / "server.log")
    try:
        yield uri
    finally:
        stop(process)


def start_worker(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``unmixlab ARGS`` in a new process: stdout piped, stderr to ``log``."""
    with log.open("w") as stderr:
        return subprocess.Popen(
            [shutil.which("unmixlab", path=str(BIN)), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def test_two_workers_share_a_postgres_study_tracked_in_postgres(
    postgres: PostgresCluster,
    moto: MotoServer,
    tracking_server: str,
    tiny_config: TrainConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    monkeypatch.delenv("UNMIXLAB_ARTIFACTS")
    monkeypatch.setenv("PGPASSWORD", postgres.env["PGPASSWORD"])
    storage = postgres.url("optuna")
    tune = TuneConfig.model_validate(
        {
            "trials": CAP,
            "epochs": 1,
            "pruner": "none",
            "heartbeat_seconds": 5,
            "space": {
                "hidden_size": [8, 16],
                "lr": {"low": 2e-2, "high": 5e-2, "log": True},
                "batch_size": None,
                "samples_per_track": None,
                "unidirectional": None,
            },
        }
    )
    prepare(tiny_config.data)  # as the tuning flow does once, before any worker starts
    spec = start_search(
        tiny_config,
        tune,
        study_name=STUDY,
        experiment=EXPERIMENT,
        storage_url=storage,
        trials_dir=tmp_path / "trials",
    )

    # two "machines": the storage URL from the environment or --storage, nothing else shared
    client_env = {k: v for k, v in os.environ.items() if not k.startswith(CLIENT_DROPS)}
    client_env |= {**postgres.env, "MLFLOW_TRACKING_URI": tracking_server}
    client_env["OMP_NUM_THREADS"] = "1"  # two workers on a small machine: a core each
    worker = ["tune", "worker", "--study", STUDY]
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    capped = start_worker(  # runs until the study holds CAP trials
        worker, client_env | {"UNMIXLAB_TUNE_STORAGE": storage}, logs[0]
    )
    single = start_worker(  # joins for one trial
        [*worker, "--storage", storage, "--max-trials", "1"], client_env, logs[1]
    )
    outputs = []
    try:
        for process, log in zip((capped, single), logs, strict=True):
            out, _ = process.communicate(timeout=180)
            assert process.returncode == 0, log.read_text()[-3000:]
            assert f"of study {STUDY}" in out
            outputs.append(out)
    finally:
        for process in (capped, single):
            if process.poll() is None:
                process.kill()
                process.wait()

    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = study.trials
    assert [t.number for t in trials] == list(range(CAP))  # the cap, exactly
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == CAP  # none twice
    workers = Counter(int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials)
    assert workers == {capped.pid: CAP - 1, single.pid: 1}  # both worked; the cap stopped one
    # each counts its own trials, not those the other started meanwhile
    assert f"worker ran {CAP - 1} trial(s)" in outputs[0]
    assert "worker ran 1 trial(s)" in outputs[1]
    best = min(trials, key=lambda t: t.value)
    assert study.best_trial.number == best.number
    assert study.best_value == pytest.approx(best.value)

    # every trial is exactly one child run of the study's run, on the server
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{spec.parent_run_id}'"
    )
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == list(range(CAP))
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in children}
    for trial in trials:
        run = by_trial[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.tags["trial_state"] == "COMPLETE"
        assert run.data.metrics["objective_loss"] == pytest.approx(trial.value)
    assert client.get_run(spec.parent_run_id).data.tags["optuna.storage"] == storage

    # the tracking data lives in PostgreSQL, the artifacts in the bucket
    with psycopg2.connect(postgres.dsn("mlflow")) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from runs")
        assert cursor.fetchone() == (CAP + 1,)  # the study's run and one per trial
        cursor.execute(
            "select count(*) from runs join experiments as e using (experiment_id)"
            " where e.name = %s",
            (EXPERIMENT,),
        )
        assert cursor.fetchone() == (CAP + 1,)
    connection.close()
    keys = [o["Key"] for o in s3(moto.endpoint).list_objects_v2(Bucket=BUCKET)["Contents"]]
    for run in children:
        assert f"{PREFIX}/{experiment.experiment_id}/{run.info.run_id}/artifacts/" \
            "model_files/vocals.pth" in keys  # fmt: skip
