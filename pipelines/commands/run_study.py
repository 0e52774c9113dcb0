"""``unmixlab run study``: the seed study (or any grid) as a Prefect flow, with its report.

Examples::

    unmixlab run study --preset seed-study-quick                 # scaled down for 2 CPU cores
    unmixlab run study --preset seed-study --seeds 3             # six configurations, twin, sweep
    unmixlab run study --preset seed-study --root /data/musdb18  # on MUSDB18 instead of synthetic
    unmixlab run study --preset seed-study-16k                   # on audio resampled to 16 kHz
    unmixlab run study --preset seed-study --workers 0           # one training per visible GPU
    unmixlab run study --preset seed-study --deployment study-training/any-study --workers 8
"""

from pathlib import Path

import click

from pipelines.commands.options import preset_options
from unmixlab.experiment import load_preset


@click.command()
@preset_options(default="seed-study", example="study.grid.hidden_size=[128,256]", flow="study")
@click.option("--seeds", type=click.IntRange(min=1), help="seeds per configuration")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    help="your MUSDB18 folder instead of the preset's (synthetic) data",
)
@click.option("--is-wav/--no-is-wav", default=None, help="--root holds MUSDB18-HQ wav folders")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="trainings at once: N processes here, 0 one per visible GPU (study.workers)",
)
@click.option(
    "--deployment",
    metavar="FLOW/DEPLOYMENT",
    help="run each training as a run of this study-training deployment, on its work pool's "
    "workers (study.deployment; needs PREFECT_API_URL)",
)
def study(
    preset: str,
    overrides: tuple[str, ...],
    seeds: int | None,
    root: Path | None,
    is_wav: bool | None,
    workers: int | None,
    deployment: str | None,
) -> None:
    """Train every configuration of a study (with its seeds), then report on the hypotheses."""
    settings = list(overrides)
    if root is not None:
        settings += [f"data.root={root}", "data.synth=null"]
        settings.append(f"data.is_wav={'true' if is_wav else 'false'}")
    elif is_wav is not None:
        settings.append(f"data.is_wav={str(is_wav).lower()}")
    if seeds is not None:
        settings.append(f"study.seeds={seeds}")
    if workers is not None:
        settings.append(f"study.workers={workers}")
    if deployment is not None:
        settings.append(f"study.deployment={deployment}")
    load_preset(preset, settings)  # a bad key fails here, in one line, before Prefect starts
    from pipelines.prefect_server import prefect_api
    from pipelines.study import study as study_flow

    with prefect_api():
        summary = study_flow(preset=preset, overrides=settings)
    lines = [
        "",
        f"study '{summary.preset}' finished in {summary.seconds:.0f} s "
        f"({summary.trained} of its {summary.total} trainings made by this run)",
        "",
    ]
    lines += [f"  {v.key} ({v.outcome}): {v.sentence}" for v in summary.verdicts]
    lines += [
        "",
        f"  report:     {summary.report.html}",
        f"              {summary.report.markdown}",
        f"  MLflow:     parent run {summary.parent_run_url}",
    ]
    click.echo("\n".join(lines))
