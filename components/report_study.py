"""Prefect task ``report_study``: the seed study's report, from its runs in MLflow."""

from pathlib import Path

from mlflow.tracking import MlflowClient
from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.study import StudyContext, Verdict, collect_results, expand, summarize, verdicts
from unmixlab.study.measurements import Measurements
from unmixlab.study.report import ReportFiles, render_markdown, write_report
from unmixlab.tracking.setup import resolve_tracking_uri


@task(name="report_study", **retry_transient())
def report_study(
    config: ExperimentConfig,
    experiment_id: str,
    context: StudyContext,
    report_dir: Path,
) -> tuple[ReportFiles, list[Verdict], str]:
    """Read the runs back from MLflow, decide the verdicts, write and log the report.

    Returns:
        The report files, the verdicts and a markdown summary (no images) for Prefect.
    """
    client = MlflowClient(resolve_tracking_uri())
    results = collect_results(client, experiment_id, context.study_run_id, context.target)
    summaries = summarize(results, expand(config.study))
    measured = context.measurements or Measurements()
    found = verdicts(summaries, config.study, measured, context.stft)
    files = write_report(context, summaries, found, report_dir)
    client.log_artifact(context.study_run_id, str(files.html), "report")
    client.log_artifact(context.study_run_id, str(files.markdown), "report")
    client.log_artifacts(context.study_run_id, str(files.images[0].parent), "report/report")
    for verdict in found:
        key = verdict.key.replace(" ", "_")
        client.set_tag(context.study_run_id, f"verdict.{key}", verdict.outcome)
    summary = render_markdown(context, summaries, found, (), image_dir="")
    return files, found, summary
