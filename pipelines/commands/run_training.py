"""``unmixlab run training``: the training flow from a preset, with a summary at the end."""

import os
from typing import TYPE_CHECKING

import click

from pipelines.commands.options import preset_options
from unmixlab.experiment import load_preset
from unmixlab.tracking.links import UI_URL_ENV, ui_base
from unmixlab.tracking.schema import SEPARATION_METRICS
from unmixlab.tracking.setup import is_server

if TYPE_CHECKING:
    from pipelines.training import TrainingSummary


@click.command()
@preset_options(default="quickstart", example="train.epochs=5", flow="training")
def training(preset: str, overrides: tuple[str, ...]) -> None:
    """Synthesise or check the data, train each target, evaluate (BSS Eval v4), promote."""
    load_preset(preset, overrides)  # a bad key fails here, in one line, before Prefect starts
    from pipelines.prefect_server import prefect_api
    from pipelines.training import training as training_flow

    with prefect_api():
        summary = training_flow(preset=preset, overrides=list(overrides))
    click.echo(format_summary(summary))


def format_summary(summary: "TrainingSummary") -> str:
    """The final summary: scores, training time, champion, and how to open the UIs."""
    lines = [
        "",
        f"training flow '{summary.flow_run_name}' ({summary.preset}) finished in "
        f"{summary.seconds:.0f} s; prepared data: {summary.prepare_state}",
        "",
        f"  {'target':<8} {' '.join(f'{m:>7}' for m in SEPARATION_METRICS)} {'train s':>8} "
        f"{'valid loss':>10}  champion",
    ]
    for target, result in summary.targets.items():
        scores = result.scores or {}
        metrics = " ".join(
            f"{scores.get(m, float('nan')):7.2f}" for m in ("SDR", "SIR", "SAR", "ISR")
        )
        promotion = result.promotion
        champion = (
            f"{promotion.model_name} v{promotion.version} ({promotion.decision})"
            if promotion
            else "not promoted"
        )
        lines.append(
            f"  {target:<8} {metrics} {result.trained.training_seconds:8.1f} "
            f"{result.trained.best_valid_loss:10.4g}  {champion}"
        )
    uri = summary.tracking_uri
    mlflow_ui = (
        f"open {ui_base(uri)}"
        if is_server(uri) or os.environ.get(UI_URL_ENV)
        else f"mlflow ui --backend-store-uri {uri}, then open {ui_base(uri)}"
    )
    prefect_ui = os.environ.get("PREFECT_API_URL", "").removesuffix("/api") or (
        "prefect server start, then http://127.0.0.1:4200"
    )
    lines += [
        "",
        f"  model:      {summary.model_dir}",
        f"  evaluation: {summary.evaluation_dir or 'skipped'}",
        f"  MLflow:     {mlflow_ui}",
        f"              parent run {summary.parent_run_url}",
        f"              all runs, the best first: {summary.runs_table_url}",
        f"  Prefect:    {prefect_ui} (flow run '{summary.flow_run_name}')",
    ]
    return "\n".join(lines)
