"""Prefect task ``report_tuning``: an Optuna study's best trial, plots and tables."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.tuning.report import TuningOutcome, finish_search


@task(name="report_tuning", **retry_transient())
def report_tuning(storage_url: str, study_name: str, report_dir: Path) -> TuningOutcome:
    """Best trial or Pareto front, plots and tables, logged on the parent run (then FINISHED).

    It first waits, with progress in the log, until no trial of the study runs (those of
    workers on other machines included): :func:`unmixlab.tuning.report.finish_search`.
    """
    return finish_search(storage_url, study_name, report_dir, log=run_logger().info)
