"""A study on every engine: one process, deployment workers, a process pool and Kubeflow.

The one end-to-end study of the suite (a reduced study: six configurations, tiny data): its
report is complete; spread over Prefect workers it matches; a rerun on worker processes, and
one on Kubeflow's local runner, each train only the trainings the study lacks.
"""

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from prefect_processes import POOL, PREFECT, ROOT, prefect_cli, start, stop
from tiny import reduced_preset

from pipelines.prefect_server import use_api
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


def assert_the_report_is_complete(output: str) -> None:
    """The report's page and markdown: every configuration, the verdicts, plots, data, clocks."""
    report = Path(re.search(r"report:\s+(\S+\.html)", output).group(1))
    page = report.read_text()
    for name in NAMES:
        assert f"<td>{name}</td>" in page
    for key in ("H1", "H1 time", "H2", "H3"):
        assert re.search(
            rf"<strong>{key}</strong><span class=\"badge\"[^>]*>(supported|contradicted|"
            r"inconclusive)</span>",
            page,
        )
    # learning curves, loss-time, sizes, SDR, loss against validation SDR, the Pareto front
    assert page.count('src="data:image/png;base64,') == 6
    # a folder given by path: the report names it as such (a preset's synth section: synthetic)
    assert "a MUSDB-format folder (wav)" in page
    assert "3 tracks" in page and "validation tracks" in page and "test tracks" in page
    assert "9.536" in page and "orientation only" in page  # the seed's number, apart
    assert "Replication of the seed" in page and "optimiser steps" in page
    assert "ms / sample (timing pass)" in page and "hardware" in page
    assert "missed / blocks" in page and "vocals, drums, bass, other" in page
    assert "oracle mask" in page and "Run order and clocks" in page
    markdown = report.with_suffix(".md").read_text()
    assert "### H1:" in markdown and "| centre |" in markdown
    realtime = markdown.split("## Real time", 1)[1].split("\n## ")[0]
    assert "| centre-uni | 512/128 | 2 hop(s) | 40.0 |" in realtime  # (512 + 128) / 16 kHz
    assert "| centre-uni-short | 256/64 | 1 hop(s) | 16.0 |" in realtime
    assert "| centre | 512/128 | whole song | offline |" in realtime


def assert_every_run_is_tracked(experiment: str, prefect_api_url: str) -> None:
    """MLflow: a parent run with the report and verdicts, one child per configuration with its
    loss history, time, SDR and real-time figures; Prefect: the verdicts as an artifact."""
    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["configuration"] for r in children) == sorted(NAMES)
    epochs = {"small": 1, "large": 1}  # the replication's; the design's budget gives two
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["study"] == "reduced" and run.data.tags["seed"] == "0"
        steps = list(range(1, epochs.get(run.data.tags["configuration"], 2) + 1))
        for key in ("train_loss", "valid_loss", "train_seconds"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == steps
        assert run.data.metrics["total_train_seconds"] > 0
        assert "test_sdr_vocals" in run.data.metrics
        assert run.info.run_name == f"{run.data.tags['configuration']} seed 0"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= artifacts
    assert len(client.list_artifacts(parent.info.run_id, "report/figures")) == 6
    assert parent.info.status == "FINISHED"
    for key in ("H1", "H1_time", "H2", "H3"):
        assert parent.data.tags[f"verdict.{key}"] in ("supported", "contradicted", "inconclusive")
    (twin,) = [r for r in children if r.data.tags["configuration"] == "centre-uni"]
    assert 0 < twin.data.metrics["stream_rtf"] and twin.data.metrics["latency_ms"] > 0
    (short,) = [r for r in children if r.data.tags["configuration"] == "centre-uni-short"]
    assert short.data.tags["realtime_block_hops"] == "1" and short.data.params["nfft"] == "256"

    with use_api(prefect_api_url), get_client(sync_client=True) as prefect:
        (artifact,) = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["study-reduced"]))
        )[-1:]
    assert artifact.type == "markdown"
    assert "### H1:" in artifact.data and "| small |" in artifact.data


def delete_runs(runs: list) -> None:
    """As if the study had been killed before these trainings."""
    from mlflow.tracking import MlflowClient

    for run in runs:
        MlflowClient().delete_run(run.info.run_id)


def assert_rerun_trained_only(experiment: str, before: dict, lost: list) -> None:
    """Each training of ``experiment`` once: the ``lost`` ones by new runs, the others kept."""
    runs = trainings_of(experiment)
    assert sorted(runs) == sorted(before) and all(len(found) == 1 for found in runs.values())
    new = {key for key, (run,) in runs.items() if run.info.run_id != before[key][0].info.run_id}
    assert new == {(run.data.tags["configuration"], int(run.data.tags["seed"])) for run in lost}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_study_on_every_engine_reports_agrees_and_reruns_only_what_is_missing(
    prefect_server: dict[str, str], synth_root: Path, tmp_path: Path, capsys
):
    env = prefect_server
    preset = reduced_preset(tmp_path, synth_root)
    alone = run_study(env, tmp_path, preset, "--set", "experiment=one-process")
    assert_the_report_is_complete(alone)
    assert_every_run_is_tracked("one-process", env["PREFECT_API_URL"])

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

    # two trainings lost: the rerun, on two worker processes here, trains just those
    lost = [one[("wide", 0)][0], one[("centre-uni", 0)][0]]
    delete_runs(lost)
    again = run_study(env, tmp_path, preset, "--set", "experiment=one-process", "--workers", "2")
    assert "2 of its 6 trainings made" in again
    assert_rerun_trained_only("one-process", one, lost)
    assert verdicts_of(again) == verdicts_of(alone)

    # two others lost: Kubeflow's local runner finds the study's records and trains those two
    before = trainings_of("one-process")
    lost = [before[("small", 0)][0], before[("centre-uni-short", 0)][0]]
    delete_runs(lost)
    kubeflow = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "kubeflow",
         "run-local", "--pipeline", "study", "--preset", str(preset),
         "--set", "experiment=one-process", "--data-uri", str(synth_root),
         "--outputs", str(tmp_path / "kfp")],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    said = kubeflow.stdout + kubeflow.stderr
    assert kubeflow.returncode == 0, said[-6000:]
    assert "2 of 6 trainings to make" in said, said[-6000:]
    assert_rerun_trained_only("one-process", before, lost)
    assert_kubeflow_verdicts(verdicts_of(alone), {r.info.run_id for r in lost})


def assert_kubeflow_verdicts(verdicts: dict[str, str], lost: set[str]) -> None:
    """The Kubeflow study's parent run: the Prefect study's verdicts, the two new trainings."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name("one-process").experiment_id
    (study,) = client.search_runs([experiment], filter_string="tags.orchestrator = 'kubeflow'")
    assert study.info.status == "FINISHED"
    tags = {key: study.data.tags[f"verdict.{key.replace(' ', '_')}"] for key in verdicts}
    assert tags == verdicts
    trainings = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{study.info.run_id}'"
    )
    assert len(trainings) == 2 and not {r.info.run_id for r in trainings} & lost


def test_prefect_threads_started_without_its_context_see_the_commands_api():
    """The process pool forwards its workers' logs from a plain thread: it must see the API
    (else Prefect starts an ephemeral server there, and leaves it running)."""
    import threading

    from prefect.settings import get_current_settings

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
