"""Prefect task ``report_study``: the seed study's report, from its runs in MLflow."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient
from unmixlab.experiment import ExperimentConfig
from unmixlab.study import StudyContext, expand, summarize
from unmixlab.study.measurements import Measurements
from unmixlab.study.report import ReportFiles, render_markdown, write_report
from unmixlab.study.verdicts import Verdict, verdicts
from unmixlab.tracking.study_runs import collect_results, log_study_report


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
    results = collect_results(experiment_id, context.study_run_id, context.target)
    summaries = summarize(results, expand(config.study))
    measured = context.measurements or Measurements()
    found = verdicts(summaries, config.study, measured, context.stft)
    files = write_report(context, summaries, found, report_dir)
    log_study_report(
        context.study_run_id,
        [files.html, files.markdown],
        files.images[0].parent,
        {verdict.key: verdict.outcome for verdict in found},
    )
    summary = render_markdown(context, summaries, found, (), image_dir="")
    return files, found, summary
