"""``unmixlab prepare``: check a data root, split it, and decode it once into the cache."""

import time
from pathlib import Path

import click
from pydantic import ValidationError

from pipelines.commands.options import flag_error


@click.command()
@click.option(
    "--root",
    required=True,
    type=click.Path(path_type=Path),
    help="MUSDB18 folder (stems .mp4, or HQ wav with --is-wav)",
)
@click.option("--is-wav", is_flag=True, help="the root holds MUSDB18-HQ wav folders")
@click.option("--sample-rate", default=44100, show_default=True, help="training sample rate in Hz")
@click.option("--nb-channels", default=2, show_default=True, help="1 (mono) or 2 (stereo)")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="cache folder [default: ROOT/.unmixlab-cache]",
)
@click.option("--valid-tracks", multiple=True, help="validation track names (repeatable)")
@click.option("--valid-count", default=1, show_default=True, help="validation tracks otherwise")
def prepare(
    root: Path,
    is_wav: bool,
    sample_rate: int,
    nb_channels: int,
    cache_dir: Path | None,
    valid_tracks: tuple[str, ...],
    valid_count: int,
) -> None:
    """Decode the training tracks of ROOT once into the cache that training reads."""
    from unmixlab.config import DataConfig
    from unmixlab.prepare import prepare

    try:
        config = DataConfig(
            root=root,
            is_wav=is_wav,
            sample_rate=sample_rate,
            nb_channels=nb_channels,
            cache_dir=cache_dir,
            valid_tracks=valid_tracks,
            valid_count=valid_count,
            cache=True,
        )
    except ValidationError as error:
        raise flag_error(error) from error
    start = time.perf_counter()
    prepared = prepare(config)
    data = prepared.load()
    seconds = time.perf_counter() - start
    duration = sum(track.duration for track in data.train + data.valid)
    click.echo(
        f"tracks: {len(data.train) + len(data.valid)} ({duration / 60:.1f} min): "
        f"{len(data.train)} train, {len(data.valid)} validation"
    )
    click.echo(f"validation: {', '.join(track.name for track in data.valid)}")
    click.echo(f"fingerprint: {data.fingerprint}")
    click.echo(f"cache: {prepared.cache_folder} ({sample_rate} Hz, {nb_channels} channels)")
    if prepared.build_seconds is None:
        click.echo(f"build: reused the existing cache ({seconds:.1f} s to check the data)")
    else:
        click.echo(f"build: decoded in {prepared.build_seconds:.1f} s")
