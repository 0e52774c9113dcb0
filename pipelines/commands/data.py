"""``unmixlab data``: make MUSDB-format data sets."""

from pathlib import Path

import click

from pipelines.commands.options import config_options, given
from unmixlab.synth import SynthSettings


@click.group()
def data() -> None:
    """Make and prepare MUSDB-format data sets."""


@data.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@config_options(SynthSettings.model_fields)
def synth(out: Path, **options: object) -> None:
    """Write a synthetic MUSDB18-HQ-format data set (drums, bass, other, vocals) to OUT."""
    from unmixlab.synth import synthesize

    settings = given(options)
    root = synthesize(out, **settings)
    counts = {subset: sum(1 for _ in (root / subset).iterdir()) for subset in ("train", "test")}
    used = SynthSettings(**settings)
    click.echo(
        f"Synthetic data set in {root}: {counts['train']} train and {counts['test']} test "
        f"tracks of {used.seconds:g} s at {used.sample_rate} Hz"
    )
