"""``unmixlab evaluate``: BSS Eval scores of a model folder on the MUSDB test tracks.

The scoring flags are generated from :class:`unmixlab.experiment.EvaluateSettings`, one per
field, so a new evaluate setting is a flag here with no edit.
"""

from pathlib import Path

import click
from pydantic import ValidationError

from pipelines.commands.options import MODEL_HELP, ModelFolder, config_options, flag_error, given
from unmixlab.step_settings import EvaluateSettings


@click.command("evaluate")
@click.option("--root", required=True, type=click.Path(path_type=Path), help="MUSDB18 folder")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=ModelFolder(),
    help=MODEL_HELP,
)
@click.option("--is-wav", is_flag=True, help="the root holds MUSDB18-HQ wav folders")
@click.option("--targets", multiple=True, help="targets to score (default: all in the folder)")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("evaluation"),
    show_default=True,
    help="folder for per-track JSON, the score tables and the listening page OUT/listen",
)
@click.option("--run-id", default=None, help="log the scores to this MLflow run")
@config_options(EvaluateSettings.model_fields, skip=("enabled",))
def evaluate_command(
    root: Path,
    model_dir: Path,
    is_wav: bool,
    targets: tuple[str, ...],
    out_dir: Path,
    run_id: str | None,
    **options: object,
) -> None:
    """Separate every test track and score it with BSS Eval v4 (SDR, SIR, SAR, ISR)."""
    from unmixlab.config import DataConfig
    from unmixlab.evaluate import scores_markdown
    from unmixlab.steps.evaluate import evaluate_folder

    try:
        settings = EvaluateSettings(**given(options))
    except ValidationError as error:
        raise flag_error(error) from error
    evaluation = evaluate_folder(
        settings,
        DataConfig(root=root, is_wav=is_wav),
        model_dir,
        out_dir,
        targets=targets,
        parent_run_id=run_id,
    )
    click.echo(scores_markdown(evaluation.aggregate))
    click.echo(
        f"{len(evaluation.tracks)} tracks in {evaluation.seconds:.0f} s; "
        f"tables in {out_dir}, per-track JSON in {evaluation.per_track_dir}"
    )
    if evaluation.listen_dir is not None:
        click.echo(f"listen: {evaluation.listen_dir / 'index.html'}")
    if run_id:
        click.echo(f"logged the scores to MLflow run {run_id}")
