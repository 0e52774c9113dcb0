"""``prefect.yaml`` deployed to a real Prefect server and run by a real process worker.

What a user does from the README: start a Prefect server, create the work pool, deploy,
start a worker, press "Run" in the UI with custom parameters (the API call the UI makes),
then find the MLflow run, its museval scores and the champion.
"""

import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient
from prefect_processes import POOL, PREFECT, ROOT, prefect_cli, start, stop


@pytest.mark.slow
def test_a_deployment_run_from_the_api_trains_evaluates_and_promotes(
    prefect_server: dict[str, str], tmp_path: Path, isolated_mlflow: str
):
    env = prefect_server
    prefect_cli(env, "work-pool", "create", POOL, "--type", "process")
    prefect_cli(env, "deploy", "--name", "training/quickstart")

    worker_env = env | {"UNMIXLAB_PROJECT_DIR": str(ROOT)}  # read by prefect.yaml's pull step
    worker_log = tmp_path / "worker.log"
    worker = start([*PREFECT, "worker", "start", "--pool", POOL], worker_env, worker_log)
    try:
        overrides = [
            f"data.root={tmp_path / 'data'}", "data.synth.tracks=2", "data.synth.seconds=4",
            "data.synth.test_tracks=1", f"output={tmp_path / 'runs'}", "experiment=deployed",
            "train.epochs=1", "train.batch_size=4", "train.samples_per_track=4",
            "train.seq_dur=1.0", "train.nfft=512", "train.nhop=128", "train.hidden_size=16",
            "evaluate.workers=1",
        ]  # fmt: skip
        flow_run = run_deployment(env["PREFECT_API_URL"], overrides, worker_log)
    finally:
        stop(worker)
    assert flow_run["state"]["type"] == "COMPLETED", worker_log.read_text()[-5000:]

    client = MlflowClient()
    experiment = client.get_experiment_by_name("deployed")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (vocals,) = [r for r in runs if r.data.tags.get("target") == "vocals"]
    assert parent.data.tags["prefect_flow_run"] == flow_run["name"]
    assert vocals.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {f"test_{m}_vocals" for m in ("sdr", "sir", "sar", "isr")} <= set(vocals.data.metrics)
    champion = client.get_model_version_by_alias("unmixlab-vocals", "champion")
    assert champion.run_id == vocals.info.run_id


def run_deployment(api: str, overrides: list[str], worker_log: Path) -> dict:
    """Create a run of ``training/quickstart`` as the UI's "Run" button does; wait for its end."""
    with httpx.Client(base_url=api, timeout=30) as http:
        deployment = http.get("/deployments/name/training/quickstart").raise_for_status().json()
        assert deployment["parameters"] == {"preset": "quickstart"}  # from prefect.yaml
        created = http.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"preset": "quickstart", "overrides": overrides}},
        ).raise_for_status()
        flow_run_id = created.json()["id"]
        deadline = time.monotonic() + 900
        while True:
            flow_run = http.get(f"/flow_runs/{flow_run_id}").raise_for_status().json()
            if flow_run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                return flow_run
            assert time.monotonic() < deadline, worker_log.read_text()[-5000:]
            time.sleep(2)
