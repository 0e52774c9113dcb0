"""The ``tuning`` flow end to end: `unmixlab run tuning` on tiny data, Prefect and MLflow real."""

from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

from pipelines.cli import cli

PRESET = {
    "description": "two hidden sizes, two epochs",
    "experiment": "tuning-flow",
    "targets": ["vocals"],
    "output": "runs",
    "train": {
        "epochs": 2,
        "batch_size": 4,
        "samples_per_track": 4,
        "seq_dur": 1.0,
        "nfft": 512,
        "nhop": 128,
        "hidden_size": 16,
        "sample_rate": 16000,
        "bandwidth": 8000,
        "seed": 0,
    },
    "evaluate": {"workers": 1},
    "tune": {
        "space": {
            "hidden_size": [8, 16],
            "lr": {"low": 0.02, "high": 0.05, "log": True},
            "batch_size": None,
            "samples_per_track": None,
            "unidirectional": None,
        },
        # two good trials for the median, then a learning rate too small to learn anything
        "enqueue": [
            {"hidden_size": 8, "lr": 0.03},
            {"hidden_size": 16, "lr": 0.03},
            {"hidden_size": 8, "lr": 1.0e-9},
        ],
        "startup_trials": 2,
        "warmup_epochs": 0,
    },
}
PLOTS = ("optimization_history", "param_importances", "contour", "intermediate_values")


@pytest.mark.slow
def test_tuning_flow_tracks_the_study_and_trains_the_best(
    prefect_harness: None, synth_root: Path, tmp_path: Path
) -> None:
    preset = tmp_path / "tiny-tune.yaml"
    data = {"root": str(synth_root), "is_wav": True, "cache_dir": str(tmp_path / "cache")}
    preset.write_text(yaml.safe_dump(PRESET | {"data": data}))

    result = CliRunner().invoke(
        cli,
        ["run", "tuning", "--preset", str(preset), "--trials", "4", "--train-best"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output

    client = MlflowClient()
    experiment = client.get_experiment_by_name("tuning-flow")
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        "tags.`optuna.study` = 'tiny-tune' and attributes.run_name = 'tiny-tune'",
    )
    parent_id = parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert len(parent.data.tags["dataset_fingerprint"]) > 8  # tagged like the training runs
    assert (
        experiment.tags["mlflow.note.content"] == "preset tiny-tune: two hidden sizes, two epochs"
    )
    assert f"/#/experiments/{experiment.experiment_id}/runs/{parent_id})" in result.output
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    trials = {int(run.data.tags["optuna.trial"]): run for run in children}
    assert sorted(trials) == [0, 1, 2, 3]
    for number, run in trials.items():
        history = client.get_metric_history(run.info.run_id, "valid_loss")
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        assert run.data.params["hidden_size"] in ("8", "16")
        assert "model_uri" not in run.data.tags  # no pyfunc model per trial
        state = run.data.tags["trial_state"]
        if state == "COMPLETE":
            assert run.info.status == "FINISHED" and len(history) == 2
        else:
            assert state == "PRUNED" and run.info.status == "FINISHED", number  # not crashed
            assert len(history) == 1 and "error" not in run.data.tags
            assert "optuna: pruned after epoch 1" in run.data.tags["mlflow.note.content"]
    assert trials[2].data.tags["trial_state"] == "PRUNED"  # the forced-bad learning rate
    assert float(trials[2].data.params["lr"]) == 1e-9

    study = optuna.load_study(study_name="tiny-tune", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.trials) == 4
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    assert parent.data.params["best.hidden_size"] == str(study.best_params["hidden_size"])
    assert parent.data.metrics["best_valid_loss"] == pytest.approx(study.best_value)
    artifacts = {a.path for a in client.list_artifacts(parent_id, "plots")}
    assert {f"plots/{name}.html" for name in PLOTS} <= artifacts
    assert {a.path for a in client.list_artifacts(parent_id, "study")} == {
        "study/summary.json",
        "study/trials.csv",
    }

    # the best configuration, trained in full by the training flow, evaluated and promoted
    best_training = client.get_run(parent.data.tags["best_training_run"])
    assert best_training.data.params["train.hidden_size"] == str(study.best_params["hidden_size"])
    assert "test_sdr_vocals" in best_training.data.metrics
    version = client.get_model_version_by_alias("unmixlab-vocals", "champion")
    champion_run = client.get_run(version.run_id)
    assert champion_run.data.tags["mlflow.parentRunId"] == best_training.info.run_id
