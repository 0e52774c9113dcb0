"""``unmixlab evaluate``: BSS Eval scores of a model folder on the MUSDB test tracks."""

from pathlib import Path

import click

from pipelines.commands.options import device_option, precision_option
from unmixlab.evaluate import EXCERPT_SECONDS
from unmixlab.scoring import SCORERS


@click.command()
@click.option("--root", required=True, type=click.Path(path_type=Path), help="MUSDB18 folder")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="model folder (separator.json and <target>.pth)",
)
@click.option("--is-wav", is_flag=True, help="the root holds MUSDB18-HQ wav folders")
@click.option("--targets", multiple=True, help="targets to score (default: all in the folder)")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("evaluation"),
    show_default=True,
    help="folder for per-track JSON and the score tables",
)
@click.option("--subset", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--workers", type=int, default=None, help="scoring processes [default: min(2, cpus)]")
@click.option("--niter", default=1, show_default=True, help="Wiener filter iterations (0: none)")
@click.option("--residual", is_flag=True, help="also report accompaniment/residual scores")
@click.option(
    "--excerpt-seconds",
    type=click.FloatRange(min=0),
    default=EXCERPT_SECONDS,
    show_default=True,
    help="excerpts to listen to, per track (0: none); the page is OUT/listen/index.html",
)
@click.option(
    "--scorer",
    type=click.Choice(SCORERS),
    default="unmixlab",
    show_default=True,
    help="BSS Eval v4 by unmixlab (museval's numbers, faster) or museval (the reference)",
)
@click.option("--run-id", default=None, help="log the scores to this MLflow run")
@device_option()
@precision_option()
def evaluate(
    root: Path,
    model_dir: Path,
    is_wav: bool,
    targets: tuple[str, ...],
    out_dir: Path,
    subset: str,
    workers: int | None,
    niter: int,
    residual: bool,
    excerpt_seconds: float,
    scorer: str,
    run_id: str | None,
    device: str,
    precision: str,
) -> None:
    """Separate every test track and score it with BSS Eval v4 (SDR, SIR, SAR, ISR).

    A rerun with the same --out scores only the tracks it does not have yet.
    """
    from unmixlab.evaluate import evaluate as run_evaluation
    from unmixlab.evaluate import log_evaluation, scores_markdown

    evaluation = run_evaluation(
        root,
        model_dir,
        is_wav=is_wav,
        targets=list(targets) or None,
        out_dir=out_dir,
        subset=subset,
        workers=workers,
        niter=niter,
        residual=residual,
        excerpt_seconds=excerpt_seconds,
        device=device,
        precision=precision,
        scorer=scorer,
    )
    click.echo(scores_markdown(evaluation.aggregate))
    reused = (
        f" ({len(evaluation.reused)} read back from an earlier run)" if evaluation.reused else ""
    )
    click.echo(
        f"{len(evaluation.tracks)} tracks{reused} scored by {evaluation.scorer} "
        f"{evaluation.scorer_version} in {evaluation.seconds:.0f} s; "
        f"tables in {out_dir}, per-track JSON in {evaluation.per_track_dir}"
    )
    if evaluation.listen_dir is not None:
        click.echo(f"listen: {evaluation.listen_dir / 'index.html'}")
    if run_id:
        logged = log_evaluation(run_id, evaluation)
        click.echo(f"logged {len(logged)} metrics to MLflow run {run_id}")
