"""Tuning library: settings, storage, faults, two workers, interruption and resume, Pareto front.

Trials are real tracked trainings of the tiny configuration (2 epochs, hidden size 8-16) on
the session's synthetic data, tracked into the test's SQLite MLflow store; studies live in
a SQLite (or journal) file in ``tmp_path``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from pydantic import ValidationError

from unmixlab.config import TrainConfig
from unmixlab.prepare import prepare
from unmixlab.tuning.report import finish_search, report_wait_timeout
from unmixlab.tuning.search import make_pruner, run_worker, run_workers, start_search
from unmixlab.tuning.settings import TuneConfig, default_space
from unmixlab.tuning.storage import (
    TuningSearch,
    default_storage_url,
    load_spec,
    open_storage,
    public_url,
    storage_for,
)

pytestmark = pytest.mark.slow  # Optuna studies that train: not a unit test

EXPERIMENT = "tuning-test"
# the tiny search: two hidden sizes and a learning rate range that learns in 2 epochs
TINY_SPACE = {
    "hidden_size": [8, 16],
    "lr": {"low": 2e-2, "high": 5e-2, "log": True},
    "batch_size": None,
    "samples_per_track": None,
    "unidirectional": None,
}


def tiny_tune(**changes: object) -> TuneConfig:
    settings = {
        "trials": 4,
        "epochs": 1,
        "space": TINY_SPACE,
        "startup_trials": 2,
        "warmup_epochs": 0,
        "heartbeat_seconds": 1,
        "grace_seconds": 2,
        "rtf_seconds": 1.0,
    }
    return TuneConfig.model_validate(settings | changes)


def begin(config: TrainConfig, tune: TuneConfig, tmp_path: Path, name: str) -> TuningSearch:
    prepare(config.data)  # the flow prepares once before the trials; so do the tests
    return start_search(
        config,
        tune,
        study_name=name,
        experiment=EXPERIMENT,
        storage_url=default_storage_url(tmp_path),
        trials_dir=tmp_path / "trials",
    )


def child_runs(parent_run_id: str) -> dict[int, object]:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    return {int(run.data.tags["optuna.trial"]): run for run in runs}


def test_space_merges_over_defaults_and_drops_nulls() -> None:
    tune = TuneConfig.model_validate(
        {"space": {"hidden_size": [64, 128], "unidirectional": None, "nb_layers": [2, 3]}}
    )
    assert tune.space["hidden_size"] == [64, 128]
    assert "unidirectional" not in tune.space
    assert tune.space["batch_size"] == default_space()["batch_size"]
    assert tune.space["nb_layers"] == [2, 3]
    assert TuneConfig.model_validate(tune.model_dump(mode="json")) == tune  # round trip


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"space": {"hiden_size": [8]}}, "not a training setting"),
        ({"space": {"root": ["/data"]}}, "not a hyperparameter"),
        ({"space": {"hidden_size": [1]}}, "hidden_size: 1 is invalid"),
        ({"space": {"lr": {"low": 1e-2, "high": 1e-3}}}, "must exceed low"),
        ({"enqueue": [{"hidden_size": 100}]}, "not one of"),
        ({"enqueue": [{"nb_layers": 2}]}, "does not search"),
        ({"objective": "time"}, "objective"),
    ],
)
def test_bad_tune_settings_are_errors(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TuneConfig.model_validate(settings)


def test_storage_urls_hide_passwords_and_journal_files_work(tmp_path: Path) -> None:
    assert public_url("postgresql://optuna:s3cret@db:5432/optuna") == (
        "postgresql://optuna:***@db:5432/optuna"
    )
    assert public_url("sqlite:///x.db") == "sqlite:///x.db"
    journal = tmp_path / "study" / "optuna.log"
    study = optuna.create_study(storage=open_storage(str(journal)), study_name="j")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=2)
    again = optuna.load_study(study_name="j", storage=open_storage(str(journal)))
    assert len(again.trials) == 2 and journal.is_file()


def test_pruner_follows_the_settings(tiny_config: TrainConfig) -> None:
    median = make_pruner(tiny_tune(), tiny_config)
    assert isinstance(median, optuna.pruners.MedianPruner)
    hyperband = make_pruner(tiny_tune(pruner="hyperband", epochs=6), tiny_config)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert hyperband._max_resource == 6
    # Optuna cannot prune multi-objective studies: two objectives never prune
    pareto = make_pruner(tiny_tune(objective="loss,time"), tiny_config)
    assert isinstance(pareto, optuna.pruners.NopPruner)


@pytest.mark.slow
def test_failing_and_nan_trials_fail_and_the_study_goes_on(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    tune = tiny_tune(
        trials=3,
        pruner="none",
        space={**TINY_SPACE, "nhop": [128, 1024]},
        enqueue=[
            {"nhop": 1024},  # exceeds nfft 512: the trial's configuration is invalid
            {"nhop": 128, "lr": 1e12},  # the loss becomes NaN in the first epoch
            {"nhop": 128, "hidden_size": 8, "lr": 3e-2},
        ],
    )
    spec = begin(tiny_config, tune, tmp_path, "faults")
    run_workers(default_storage_url(tmp_path), "faults", workers=1)

    study = optuna.load_study(study_name="faults", storage=default_storage_url(tmp_path))
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert "nhop" in study.trials[0].user_attrs["error"]
    assert "nan" in study.trials[1].user_attrs["error"]
    assert study.best_trial.number == 2
    runs = child_runs(spec.parent_run_id)
    assert sorted(runs) == [1, 2]  # the invalid configuration never started a run
    assert runs[1].info.status == "FAILED" and runs[1].data.tags["trial_state"] == "FAIL"
    assert runs[2].info.status == "FINISHED" and runs[2].data.tags["trial_state"] == "COMPLETE"
    # trials log the model folder and checkpoint, not the (slow) pyfunc model
    assert "model_uri" not in runs[2].data.tags
    files = {a.path for a in MlflowClient().list_artifacts(runs[2].info.run_id, "model_files")}
    assert "model_files/vocals.pth" in files


@pytest.mark.slow
def test_two_worker_processes_share_the_trial_cap(tiny_config: TrainConfig, tmp_path: Path) -> None:
    spec = begin(tiny_config, tiny_tune(trials=3, pruner="none"), tmp_path, "shared")
    url = default_storage_url(tmp_path)
    run_workers(url, "shared", workers=2)

    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    runs = child_runs(spec.parent_run_id)
    assert sorted(runs) == [0, 1, 2]  # one run per trial: none ran twice
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [
        "trial-0000",
        "trial-0001",
        "trial-0002",
    ]
    assert run_worker(url, "shared") == 0  # the cap holds for a late worker too


@pytest.mark.slow
def test_killed_study_resumes_from_storage(tiny_config: TrainConfig, tmp_path: Path) -> None:
    tune = tiny_tune(
        trials=3,
        pruner="none",
        # trial 1 is slow (many chunks per epoch), so the worker is killed inside it
        space={**TINY_SPACE, "samples_per_track": [4, 64]},
        enqueue=[{"samples_per_track": 4}, {"samples_per_track": 64}],
    )
    spec = begin(tiny_config, tune, tmp_path, "interrupted")
    url = default_storage_url(tmp_path)
    worker = subprocess.Popen(
        [Path(sys.executable).parent / "unmixlab", "tune", "worker"]
        + ["--study", "interrupted", "--storage", url],
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    storage = open_storage(url)
    deadline = time.monotonic() + 120
    started = False  # trial 1 runs and has its MLflow run
    while not started and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        trials = optuna.load_study(study_name="interrupted", storage=storage).trials
        started = len(trials) == 2 and "mlflow_run_id" in trials[1].user_attrs
    assert started, (tmp_path / "worker.log").read_text()[-2000:]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = optuna.load_study(study_name="interrupted", storage=storage).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]

    time.sleep(tune.grace_seconds + 1)  # the dead worker's heartbeat goes stale
    resumed = begin(tiny_config, tune, tmp_path, "interrupted")
    assert resumed.parent_run_id == spec.parent_run_id  # the same parent run goes on
    run_workers(url, "interrupted", workers=1)

    after = optuna.load_study(study_name="interrupted", storage=url).trials
    # the dead worker's trial failed and does not count: three finished trials, as asked
    states = [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert [t.state for t in after] == states
    assert after[0].values == before[0].values  # not run again
    runs = child_runs(spec.parent_run_id)
    assert sorted(runs) == [0, 1, 2, 3]
    assert runs[1].info.status == "FAILED" and runs[1].data.tags["trial_state"] == "FAIL"
    assert "heartbeat" in runs[1].data.tags["error"]


def test_report_on_a_journal_file_waits_out_a_dead_worker_and_says_so(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    journal = str(tmp_path / "optuna.log")
    tune = tiny_tune(report_wait_seconds=1)
    spec = start_search(
        tiny_config,
        tune,
        study_name="journal",
        experiment=EXPERIMENT,
        storage_url=journal,
        trials_dir=tmp_path / "trials",
    )
    # a killed worker's trial: without heartbeat it stays RUNNING
    optuna.load_study(study_name="journal", storage=open_storage(journal)).ask()
    summary = finish_search(journal, "journal", tmp_path / "report", poll_seconds=0.2)

    assert summary.states == {"RUNNING": 1}
    assert summary.waited_seconds >= 1  # its own clock: it gave up after report_wait_seconds
    assert "1 trial(s) still running" in summary.note and "no heartbeat" in summary.note
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["note"] == summary.note
    parent = MlflowClient().get_run(spec.parent_run_id)
    assert parent.data.tags["report_note"] == summary.note
    assert parent.info.status == "FINISHED"
    assert report_wait_timeout(journal, tiny_tune()) == 300  # journal files: bounded
    assert report_wait_timeout(default_storage_url(tmp_path), tiny_tune()) is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # ask()
def test_two_objectives_give_a_pareto_front_and_its_plot(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    tune = tiny_tune(trials=3, objective="loss,rtf", enqueue=[{"hidden_size": 8}])
    spec = begin(tiny_config, tune, tmp_path, "pareto")
    url = default_storage_url(tmp_path)
    storage = storage_for(url, tune)
    study = optuna.load_study(study_name="pareto", storage=storage)
    ran: list[int] = []
    worker = threading.Thread(target=lambda: ran.append(run_worker(url, "pareto", worker_index=0)))
    worker.start()
    while worker.is_alive() and not study.get_trials(states=(TrialState.RUNNING,)):
        time.sleep(0.05)
    other = study.ask()  # another machine's worker starts a trial meanwhile
    worker.join()
    assert ran == [2]  # trials 0 and 2: the worker counts its own trials only

    # the report waits for the other machine's trials: one finishes, one's worker died
    dead = study.ask()
    storage.record_heartbeat(dead._trial_id)  # then silence: failed after the grace period
    events: list[str] = []

    def tell_other() -> None:  # another machine's trial ends while the report waits
        study.tell(other, [10.0, 10.0])  # dominated
        events.append("other trial told")

    def log(line: str) -> None:  # the report's first line: it waits for running trials
        if not events:
            events.append("report waiting")
            threading.Thread(target=tell_other).start()

    summary = finish_search(url, "pareto", tmp_path / "report", log=log, poll_seconds=0.2)
    events.append("report written")

    # the order of events, not their durations: the report waited for the other trial
    assert events == ["report waiting", "other trial told", "report written"]
    assert summary.states == {"COMPLETE": 3, "FAIL": 1}
    assert summary.waited_seconds > 0 and summary.note is None
    assert summary.objectives == ("valid_loss", "cpu_rtf")
    front = summary.pareto_front
    assert front and all(set(p["values"]) == {"valid_loss", "cpu_rtf"} for p in front)
    assert all(p["values"]["cpu_rtf"] > 0 for p in front)
    losses = [p["values"]["valid_loss"] for p in front]
    assert losses == sorted(losses) and summary.best_trial == front[0]["number"]
    client = MlflowClient()
    plots = {a.path for a in client.list_artifacts(spec.parent_run_id, "plots")}
    assert "plots/pareto_front.html" in plots
    parent = client.get_run(spec.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["pareto_front_size"] == len(front)
    assert load_spec(default_storage_url(tmp_path), "pareto").tune.objective == "loss,rtf"


def test_dashboard_and_mlflow_show_readable_names_links_and_small_plots(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    tune = tiny_tune(trials=2, pruner="none", enqueue=[{"hidden_size": 8, "lr": 3e-2}])
    prepare(tiny_config.data)
    url = default_storage_url(tmp_path)
    spec = start_search(
        tiny_config, tune, study_name="readable", experiment=EXPERIMENT, storage_url=url,
        trials_dir=tmp_path / "trials", preset="tune-test",
        tags={"dataset_fingerprint": "abc123", "mlflow.note.content": "a tiny study"},
    )  # fmt: skip
    run_workers(url, "readable", workers=1)
    finish_search(url, "readable", tmp_path / "report")

    study = optuna.load_study(study_name="readable", storage=url)
    assert study.metric_names == ["valid_loss"]  # not "Objective 0"
    attrs = study.user_attrs
    assert attrs["objective"] == "valid_loss (minimised)" and attrs["preset"] == "tune-test"
    assert attrs["space: hidden_size"] == "8, 16"
    assert attrs["space: lr"] == "0.02 to 0.05 (log)"
    assert attrs["mlflow parent run"] == spec.parent_run_id
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = child_runs(spec.parent_run_id)
    first = study.trials[0]
    assert first.user_attrs["mlflow_run"] == (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{runs[0].info.run_id}"
    )
    assert runs[0].info.run_name == "trial 0 · h8 lr 0.03"
    # optuna-dashboard renders a trial's note as markdown: a link that opens the run
    note = optuna_dashboard.get_note(optuna.Trial(study, first._trial_id))
    assert note == f"MLflow run: [trial 0 · h8 lr 0.03]({first.user_attrs['mlflow_run']})"

    parent = client.get_run(spec.parent_run_id).data.tags
    assert parent["dataset_fingerprint"] == "abc123"
    assert parent["mlflow.note.content"] == "a tiny study"
    assert {"git_commit", "mlflow.user", "mlflow.source.name"} <= set(parent)
    history = tmp_path / "report" / "plots" / "optimization_history.html"
    assert history.stat().st_size < 100_000  # plotly.js from its CDN, not 4.7 MB inside
    assert "cdn.plot.ly" in history.read_text()


@pytest.mark.parametrize("enqueued", [False, True], ids=["sampled", "enqueued"])
def test_a_trial_interrupted_before_its_objective_is_failed_not_left_running(
    tmp_path: Path, enqueued: bool
):
    """Ctrl-C between Optuna's ask and the objective: no RUNNING trial without a heartbeat."""
    from unmixlab.tuning.search import _no_trial_left_running

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=storage)
    if enqueued:
        study.enqueue_trial({"x": 1.0})
    with pytest.raises(KeyboardInterrupt), _no_trial_left_running(study, storage):
        study.ask()  # the trial is RUNNING from here; the objective never starts
        raise KeyboardInterrupt
    (asked, *queued) = study.get_trials(deepcopy=False)
    assert asked.state == TrialState.FAIL and asked.user_attrs["interrupted"] is True
    assert [t.system_attrs.get("fixed_params") for t in queued] == (
        [{"x": 1.0}] if enqueued else []
    )
    assert all(t.state == TrialState.WAITING for t in queued)
    assert "ask" not in vars(study)  # Optuna's own again
