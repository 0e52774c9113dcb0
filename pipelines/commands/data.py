"""``unmixlab data``: make MUSDB-format data sets."""

from pathlib import Path

import click

from unmixlab.synth import synthesize


@click.group()
def data() -> None:
    """Make and prepare MUSDB-format data sets."""


@data.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tracks", default=8, show_default=True, help="Number of train tracks.")
@click.option("--seconds", default=12.0, show_default=True, help="Duration of each track.")
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice.")
@click.option("--sample-rate", default=44100, show_default=True, help="Sample rate in Hz.")
@click.option(
    "--test-tracks",
    type=int,
    default=None,
    help="Number of test tracks [default: tracks // 4, at least 2].",
)
def synth(
    out: Path, tracks: int, seconds: float, seed: int, sample_rate: int, test_tracks: int | None
) -> None:
    """Write a synthetic MUSDB18-HQ-format data set (drums, bass, other, vocals) to OUT."""
    root = synthesize(
        out,
        tracks=tracks,
        seconds=seconds,
        seed=seed,
        sample_rate=sample_rate,
        test_tracks=test_tracks,
    )
    counts = {subset: sum(1 for _ in (root / subset).iterdir()) for subset in ("train", "test")}
    click.echo(
        f"Synthetic data set in {root}: {counts['train']} train and {counts['test']} test "
        f"tracks of {seconds:g} s at {sample_rate} Hz"
    )
