"""``unmixlab export``: the streaming separator as a file other runtimes load."""

from pathlib import Path

import click

from pipelines.commands.options import ModelFolder


@click.group()
def export() -> None:
    """Export trained models for other runtimes."""


@export.command()
@click.argument("model_dir", type=ModelFolder())
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--block-hops",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="hops per block, fixed in the graph (as `unmixlab stream --block-hops`)",
)
@click.option("--targets", multiple=True, help="targets to export (default: all)")
def onnx(model_dir: Path, out: Path, block_hops: int, targets: tuple[str, ...]) -> None:
    r"""Export the streaming step of MODEL_DIR's unidirectional models to OUT (ONNX).

    \b
    One block of audio in, one block of every target's estimate out; the STFT overlap,
    the overlap-add tail and the LSTM state are explicit inputs and outputs. The file is
    checked in onnxruntime against the PyTorch streaming separator before it is kept.
      unmixlab export onnx models/causal causal.onnx --block-hops 1
      unmixlab stream song.wav --model models/causal --engine onnx --onnx causal.onnx \
          --out stems/
    """
    from unmixlab.export import TOLERANCE, export_onnx

    click.echo(f"exporting {model_dir} ({block_hops} hop(s) per block) ...", err=True)
    error = export_onnx(model_dir, out, block_hops, list(targets) or None)
    click.echo(
        f"{out}: onnxruntime matches the PyTorch streaming separator "
        f"(max difference {error:.1e} <= {TOLERANCE:g})"
    )
