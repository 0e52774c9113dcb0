"""A study's trainings spread over workers, and a rerun that trains only what is missing."""

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from prefect_processes import POOL, PREFECT, ROOT, prefect_cli, start, stop
from tiny import reduced_preset

from unmixlab.experiment import load_preset
from unmixlab.study import plan
from unmixlab.study.measurements import CostMeasurement, RunClock, StudyRecord
from unmixlab.study_steps import (
    costs_from_json,
    costs_to_json,
    missing_runs,
    ordered,
    study_key,
)

NAMES = ("small", "large", "centre", "wide", "centre-uni", "centre-uni-short")


def test_the_study_key_follows_what_trainings_learn_not_seeds_workers_or_output():
    key = study_key(load_preset("seed-study-quick"), "data-1")
    same = ["study.seeds=9", "study.workers=4", "output=elsewhere", "study.analysis.alpha=0.01"]
    assert study_key(load_preset("seed-study-quick", same), "data-1") == key
    assert study_key(load_preset("seed-study-quick", ["train.lr=0.01"]), "data-1") != key
    assert study_key(load_preset("seed-study-quick", ["evaluate.residual=true"]), "data-1") != key
    assert study_key(load_preset("seed-study-quick"), "data-2") != key  # other data


def test_a_rerun_trains_only_the_trainings_without_a_record():
    config = load_preset("seed-study-quick")
    trainings = ordered(config, plan(config, Path("models")))
    assert [t.position for t in trainings] == list(range(1, len(trainings) + 1))
    assert ordered(config, plan(config, Path("other"))) == trainings  # the order is seeded
    clock = RunClock("x", 0, 1, 1.0, 1.0, (0.0, 0.0))
    records = {(t.configuration, t.seed): StudyRecord("r", Path("m"), clock) for t in trainings}
    assert missing_runs(trainings, records) == []
    del records[(trainings[3].configuration, trainings[3].seed)]
    assert missing_runs(trainings, records) == [trainings[3]]


def test_the_timing_pass_travels_as_json_between_kubeflow_steps():
    cost = CostMeasurement("centre", 1.5, 1.2, 1.0, 2.0, 5, 2, 1000, 3.5e6, (0.5, 0.7))
    costs = {"centre": cost, "wide": replace(cost, configuration="wide")}
    assert costs_from_json(costs_to_json(costs)) == costs


def run_study(env: dict[str, str], cwd: Path, preset: Path, *options: str) -> str:
    """``unmixlab run study`` in its own process, as a user runs it; its output."""
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", "study"]
    result = subprocess.run(
        [*command, "--preset", str(preset), *options],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def trainings_of(experiment: str) -> dict[tuple[str, int], list]:
    """The experiment's complete study trainings, by (configuration, seed)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string="tags.study_key != ''",
    )
    found: dict[tuple[str, int], list] = {}
    for run in runs:
        found.setdefault((run.data.tags["configuration"], int(run.data.tags["seed"])), []).append(
            run
        )
    return found


def verdicts_of(output: str) -> dict[str, str]:
    return dict(re.findall(r"^  (H[0-9]+(?: time)?) \((\w+)\):", output, re.MULTILINE))


def seconds_of(output: str) -> float:
    return float(re.search(r"finished in (\d+) s", output)[1])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_study_spread_over_workers_matches_one_process_and_a_rerun_trains_what_is_missing(
    prefect_server: dict[str, str], synth_root: Path, tmp_path: Path, capsys
):
    from mlflow.tracking import MlflowClient

    env = prefect_server
    preset = reduced_preset(tmp_path, synth_root)
    alone = run_study(env, tmp_path, preset, "--set", "experiment=one-process")

    # the same study on two process workers of a work pool, each training a deployment run
    prefect_cli(env, "work-pool", "create", POOL, "--type", "process")
    prefect_cli(env, "deploy", "--name", "study-training/any-study")
    worker_env = env | {"UNMIXLAB_PROJECT_DIR": str(ROOT)}  # the pull step's folder
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    command = [*PREFECT, "worker", "start", "--pool", POOL, "--limit", "1"]  # one run each
    workers = [start(command, worker_env, log) for log in logs]
    try:
        spread = run_study(
            env, tmp_path, preset, "--set", "experiment=spread",
            "--deployment", "study-training/any-study", "--workers", "2",
        )  # fmt: skip
    finally:
        for worker in workers:
            stop(worker)
    with capsys.disabled():  # both wall times, for the note
        print(f"\none process: {seconds_of(alone)} s; two workers: {seconds_of(spread)} s")

    # every training ran once, and the two studies agree to float tolerance
    one, two = trainings_of("one-process"), trainings_of("spread")
    assert sorted(one) == sorted(two) == sorted((name, 0) for name in NAMES)
    assert all(len(runs) == 1 for runs in [*one.values(), *two.values()])
    for key, (run,) in one.items():
        (other,) = two[key]
        for metric in ("best_valid_loss", "test_sdr_vocals"):
            assert other.data.metrics[metric] == pytest.approx(run.data.metrics[metric], rel=1e-3)
    assert verdicts_of(spread) == verdicts_of(alone) and len(verdicts_of(alone)) == 4
    worked = [log.read_text() for log in logs]
    assert all("study-training" in text for text in worked), worked  # both workers took runs

    # as if the one-process study had been killed before two of its trainings: its rerun
    # (on two worker processes here) trains just those
    lost = [one[("wide", 0)][0], one[("centre-uni", 0)][0]]
    for run in lost:
        MlflowClient().delete_run(run.info.run_id)
    again = run_study(env, tmp_path, preset, "--set", "experiment=one-process", "--workers", "2")
    assert "2 of its 6 trainings made" in again
    runs = trainings_of("one-process")
    assert sorted(runs) == sorted(one) and all(len(found) == 1 for found in runs.values())
    assert not {r.info.run_id for (r,) in runs.values()} & {run.info.run_id for run in lost}
    assert verdicts_of(again) == verdicts_of(alone)


def test_prefect_threads_started_without_its_context_see_the_commands_api():
    """The process pool forwards its workers' logs from a plain thread: it must see the API
    (else Prefect starts an ephemeral server there, and leaves it running)."""
    import threading

    from prefect.settings import get_current_settings

    from pipelines.prefect_server import use_api

    url = "http://127.0.0.1:9/api"
    seen: list[str | None] = []

    def look() -> None:
        seen.append(get_current_settings().api.url)

    with use_api(url):
        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
    after = threading.Thread(target=look)
    after.start()
    after.join()
    assert seen[0] == url and seen[1] != url
