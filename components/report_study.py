"""Prefect task ``report_study``: the study's report step, retried on transient failures."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.prepare import PreparedData
from unmixlab.study.measurements import CostMeasurement
from unmixlab.study_steps import StudyReport
from unmixlab.study_steps import report_study as report_step
from unmixlab.tracking.parent_run import ParentRun


@task(name="report_study", **retry_transient())
def report_study(
    config: ExperimentConfig,
    preset: str,
    overrides: list[str],
    prepared: PreparedData,
    parent: ParentRun,
    costs: dict[str, CostMeasurement],
    run_dir: Path,
    started: float,
) -> StudyReport:
    """Read the trainings back from MLflow, measure the rest, decide, write and log the report.

    Raises:
        UnmixlabError: a training has no complete record, or the tracking store is
            unreachable (retried).
    """
    return report_step(config, preset, overrides, prepared, parent, costs, run_dir, started)
