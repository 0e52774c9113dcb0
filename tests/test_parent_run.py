"""The one run lifecycle: settings as params, resume, and how a run ends (real MLflow store)."""

import pytest
from mlflow import MlflowClient

from unmixlab.tracking.parent_run import PARAM_CHARS, ParentRun, end_run, failure

pytestmark = pytest.mark.slow  # each test creates an MLflow store: its migrations take ~1.5 s


def test_a_new_run_gets_the_settings_as_flat_params_in_batches():
    settings = {"train": {f"field{i}": i for i in range(150)}, "long": "x" * 7000, "tags": [1, 2]}
    parent = ParentRun.start("exp", "study", tags={"preset": "p"}, settings=settings, prefix="t.")
    run = MlflowClient(parent.tracking_uri).get_run(parent.run_id)
    assert run.info.status == "RUNNING" and run.info.run_name == "study"
    assert len(run.data.params) == 152  # more than one batch of 100
    assert run.data.params["t.train.field149"] == "149"
    assert run.data.params["t.long"] == "x" * PARAM_CHARS
    assert run.data.params["t.tags"] == "[1, 2]"
    assert run.data.tags["preset"] == "p" and "mlflow.user" in run.data.tags


def test_resume_reopens_an_earlier_run_of_the_same_experiment_only():
    first = ParentRun.start("exp", "study", tags={}, settings={"a": 1})
    first.end("KILLED", error="interrupted")
    again = ParentRun.start("exp", "study", tags={}, settings={"a": 1}, resume_run=first.run_id)
    assert again == first
    assert first.client.get_run(first.run_id).info.status == "RUNNING"
    other = ParentRun.start("other", "study", tags={}, settings={}, resume_run=first.run_id)
    assert other.run_id != first.run_id


@pytest.mark.parametrize(
    ("error", "status", "tag"),
    [
        (KeyboardInterrupt(), "KILLED", "interrupted"),
        (ValueError("bad"), "FAILED", "ValueError: bad"),
    ],
)
def test_a_stopped_run_ends_with_its_status_and_error(error, status, tag):
    parent = ParentRun.start("exp", "flow", tags={}, settings={})
    parent.end(*failure(error), metrics={"runs": 2})
    run = parent.client.get_run(parent.run_id)
    assert (run.info.status, run.data.tags["error"], run.data.metrics["runs"]) == (status, tag, 2)


def test_ending_a_failed_run_on_a_lost_store_keeps_the_original_error_going(caplog, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    parent = ParentRun.start("exp", "flow", tags={}, settings={})
    unreachable = MlflowClient("http://127.0.0.1:9")  # nothing listens on the discard port
    end_run(unreachable, parent.run_id, "FAILED", "RuntimeError: boom")  # logs, never raises
    assert "could not mark MLflow run" in caplog.text
    with pytest.raises(Exception):  # noqa: B017 - a successful end must not pass silently
        end_run(unreachable, parent.run_id, "FINISHED")
