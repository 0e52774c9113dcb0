"""``unmixlab separate``: one wav per target for each input song."""

from pathlib import Path

import click

from pipelines.commands.options import MODEL_HELP, ModelFolder, device_option, precision_option


@click.command()
@click.argument("songs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", required=True, type=ModelFolder(), help=MODEL_HELP)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="output folder"
)
@click.option("--targets", multiple=True, help="targets to separate (default: all in the folder)")
@click.option(
    "--niter",
    default=1,
    show_default=True,
    help="Wiener filter iterations (0: none; one target without --residual is not filtered)",
)
@click.option("--residual", is_flag=True, help="also write everything else as 'residual'")
@device_option()
@precision_option()
def separate(
    songs: tuple[Path, ...],
    model_dir: Path,
    out_dir: Path,
    targets: tuple[str, ...],
    niter: int,
    residual: bool,
    device: str,
    precision: str,
) -> None:
    """Separate SONGS into one wav per target under OUT/<song>/."""
    from unmixlab.audio import read_audio, write_audio
    from unmixlab.separator import load_separator

    separator = load_separator(
        model_dir,
        list(targets) or None,
        niter=niter,
        residual=residual,
        device=device,
        precision=precision,
    )
    for song in songs:
        audio, rate = read_audio(song)
        estimates = separator.separate(audio, rate)
        # MUSDB names every mixture 'mixture.wav': name the output after its track folder
        folder = out_dir / (song.parent.name if song.stem == "mixture" else song.stem)
        for name, estimate in estimates.items():
            write_audio(folder / f"{name}.wav", estimate, rate)
        click.echo(f"{song} -> {folder}/ ({', '.join(estimates)})")
