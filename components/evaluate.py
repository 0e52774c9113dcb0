"""Prefect task ``evaluate``: the evaluate step, retried on transient tracking failures."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.config import DataConfig
from unmixlab.evaluate import Evaluation, scores_markdown
from unmixlab.step_settings import EvaluateSettings
from unmixlab.steps.evaluate import evaluate_models
from unmixlab.steps.train import TrainedModel


@task(name="evaluate", **retry_transient())
def evaluate(
    settings: EvaluateSettings,
    data: DataConfig,
    models: list[TrainedModel],
    out_dir: Path,
    parent_run_id: str | None = None,
) -> Evaluation:
    """Score ``models`` (one folder) with every evaluate setting; log to their runs.

    Raises:
        UnmixlabError: bad root or model folder, or the tracking store is unreachable.
    """
    evaluation = evaluate_models(settings, data, models, out_dir, parent_run_id)
    run_logger().info(
        "BSS Eval scores of %d %s tracks (%.0f s):\n%s",
        len(evaluation.tracks),
        settings.subset,
        evaluation.seconds,
        scores_markdown(evaluation.aggregate),
    )
    return evaluation
