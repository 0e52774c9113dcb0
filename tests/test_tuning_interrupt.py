"""Ctrl-C in a tuning that extends a finished study: the record stays right, a rerun completes.

The sequence a user runs: ``--trials 3`` to the end; ``--trials 5 --workers 2`` interrupted
(SIGINT to the terminal's process group, as Ctrl-C sends it) while its trials train; then
``--trials 5`` again. Real processes, Prefect (temporary server), Optuna and MLflow stores.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

PRESET = {
    "description": "interrupted tuning",
    "experiment": "tuning-interrupt",
    "targets": ["vocals"],
    "output": "runs",
    "train": {
        "epochs": 3,
        "batch_size": 4,
        "samples_per_track": 4,
        "seq_dur": 1.0,
        "nfft": 512,
        "nhop": 128,
        "hidden_size": 16,
        "sample_rate": 16000,
        "seed": 0,
    },
    "tune": {
        "space": {
            "hidden_size": [8, 16],
            "lr": {"low": 0.01, "high": 0.05, "log": True},
            "batch_size": None,
            "samples_per_track": None,
            "unidirectional": None,
        },
        "startup_trials": 2,
    },
}
STUDY = "tiny-interrupt"


def command(preset: Path, *args: str) -> list[str]:
    """``unmixlab run tuning --preset PRESET ARGS``."""
    cli = "from pipelines.cli import main; main()"
    return [sys.executable, "-c", cli, "run", "tuning", "--preset", str(preset), *args]


def trials(states: tuple[TrialState, ...]) -> list[optuna.trial.FrozenTrial]:
    """The study's trials in ``states`` (./optuna.db)."""
    study = optuna.load_study(study_name=STUDY, storage="sqlite:///optuna.db")
    return study.get_trials(deepcopy=False, states=states)


def parent_status(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name("tuning-interrupt")
    query = f"tags.`optuna.study` = '{STUDY}' and attributes.run_name = '{STUDY}'"
    (parent,) = client.search_runs([experiment.experiment_id], query)
    return parent.info.status


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three tuning commands; about 1.5 minutes on a quiet 2-core machine
def test_interrupted_tuning_keeps_the_record_and_a_rerun_finishes_it(
    synth_root: Path, tmp_path: Path, prefect_home: Path
) -> None:
    preset = tmp_path / f"{STUDY}.yaml"
    data = {"root": str(synth_root), "is_wav": True, "cache_dir": str(tmp_path / "cache")}
    preset.write_text(yaml.safe_dump(PRESET | {"data": data}))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home)
    client = MlflowClient()
    finished = (TrialState.COMPLETE, TrialState.PRUNED)

    first = subprocess.run(command(preset, "--trials", "3"), env=env, capture_output=True)
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    assert len(trials(finished)) == 3 and parent_status(client) == "FINISHED"

    log = tmp_path / "interrupted.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command(preset, "--trials", "5", "--workers", "2"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a terminal's job: Ctrl-C reaches its whole group
        )
    deadline = time.monotonic() + 600
    while len(trials((TrialState.RUNNING,))) < 2:  # both workers train a trial
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=120) == 130
    output = log.read_text()
    assert "Traceback" not in output and "leaked semaphore" not in output, output[-3000:]
    assert output.splitlines().count("aborted") == 1, output[-3000:]  # the one line
    assert parent_status(client) == "FINISHED"  # the finished study's run stays so
    interrupted = [t for t in trials((TrialState.FAIL,)) if t.user_attrs.get("interrupted")]
    assert interrupted and len(trials(finished)) < 5
    for trial in interrupted:  # those interrupted before their training started have no run
        if "mlflow_run_id" not in trial.user_attrs:
            continue
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert (run.info.status, run.data.tags["trial_state"]) == ("KILLED", "INTERRUPTED")
    queued = {str(t.system_attrs["fixed_params"]) for t in trials((TrialState.WAITING,))}
    assert {str(t.params) for t in interrupted if t.params} <= queued  # their params run again

    again = subprocess.run(command(preset, "--trials", "5"), env=env, capture_output=True)
    assert again.returncode == 0, again.stderr.decode()[-3000:]
    assert len(trials(finished)) == 5 and parent_status(client) == "FINISHED"
    for trial in trials(finished):
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED", (trial.number, trial.state)  # pruned too
