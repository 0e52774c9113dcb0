"""``unmixlab stream``: separate as a live stream would, block by block, with timing figures."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click
import numpy as np
import torch
from click.core import ParameterSource

from pipelines.commands.options import MODEL_HELP, ModelFolder, precision_option
from unmixlab.audio import match_channels, read_audio, resample, write_audio
from unmixlab.errors import UnmixlabError
from unmixlab.progress import tqdm
from unmixlab.quantize import streaming_precision
from unmixlab.realtime import MeasuredStream, torch_threads
from unmixlab.streaming import StreamingSeparator, load_streaming_separator

# raw PCM sample formats: numpy dtype of one interleaved sample, and its full scale
PCM_FORMATS = {"f32le": ("<f4", 1.0), "s16le": ("<i2", 32768.0)}

HELP = """Separate with unidirectional models block by block, as a live stream would.

\b
Files: each SONG is streamed block by block (resampled to the model's rate first) and
OUT/<song>/<target>.wav written; the real-time factor, the worst block time against the
block's duration and the algorithmic latency are printed.
  unmixlab stream song.wav --model DIR --block-hops 2 --out stems/

\b
Raw (--raw): interleaved PCM (--format f32le or s16le, --rate, --channels) from stdin;
the --target estimate goes to stdout in the same format, rate and channel count, aligned
with the input (as many samples out as in; the end is flushed with silence). Each block
is written as soon as it is separated; the figures go to stderr. A live stream never
stops for bad input: samples that are not audio (NaN, infinite, or beyond +/-16, i.e.
+24 dBFS) are zeroed with a warning, and the output is clipped to [-1, 1]. Files with
such samples are refused with one line instead.
  ffmpeg -i song.mp3 -f f32le -ar 44100 -ac 2 - |
  unmixlab stream --raw --model DIR --rate 44100 --channels 2 --target vocals |
  ffmpeg -f f32le -ar 44100 -ac 2 -i - vocals.wav

\b
Engine (--engine onnx): each block runs in onnxruntime, from the step exported by
`unmixlab export onnx MODEL OUT.onnx` (its targets and block hops).
  unmixlab stream song.wav --model DIR --engine onnx --onnx DIR/streaming.onnx --out stems/

\b
Precision (--precision auto, the default): on x86 CPUs the linear and LSTM weights run in
int8 (PyTorch's dynamic quantization): a quarter of the bytes each block reads, two to
three times as fast where memory bandwidth bounds the stream; the estimates move by rounding
only (see README). --precision float32 gives the estimates of `unmixlab separate --niter 0`
with the same models, to 1e-4; --engine onnx runs float32.
  unmixlab stream song.wav --model DIR --precision float32 --out stems/
"""


@click.command(help=HELP)
@click.argument("songs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", required=True, type=ModelFolder(), help=MODEL_HELP)
@click.option(
    "--block-hops",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="hops per block; algorithmic latency is nfft + (block_hops - 1) * nhop samples",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="output folder (files)")
@click.option("--targets", multiple=True, help="targets to separate (files; default: all)")
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(min=1), help="torch threads"
)
@click.option("--raw", is_flag=True, help="read raw PCM on stdin, write one target to stdout")
@click.option("--rate", type=int, help="raw: sample rate in Hz (must be the model's)")
@click.option("--channels", type=click.IntRange(1, 2), help="raw: 1 or 2 interleaved channels")
@click.option(
    "--format",
    "sample_format",
    type=click.Choice(sorted(PCM_FORMATS)),
    default="f32le",
    show_default=True,
    help="raw: sample format, in and out",
)
@click.option("--target", help="raw: the target written to stdout (default: the only one)")
@click.option(
    "--engine",
    type=click.Choice(["torch", "onnx"]),
    default="torch",
    show_default=True,
    help="run each block in PyTorch, or in onnxruntime from --onnx (`unmixlab export onnx`)",
)
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="--engine onnx: the exported step [default: MODEL/streaming.onnx]; its targets "
    "and block hops are the ones it was exported with",
)
@precision_option(auto=True)
def stream(
    songs: tuple[Path, ...],
    model_dir: Path,
    block_hops: int,
    out_dir: Path | None,
    targets: tuple[str, ...],
    threads: int,
    raw: bool,
    rate: int | None,
    channels: int | None,
    sample_format: str,
    target: str | None,
    engine: str,
    onnx_path: Path | None,
    precision: str,
) -> None:
    """Separate with unidirectional models block by block (see ``HELP``)."""
    if raw:
        if songs not in ((), (Path("-"),)):
            raise click.UsageError("--raw reads stdin: give no SONG (or '-')")
        if rate is None or channels is None:
            raise click.UsageError("--raw needs --rate and --channels")
        chosen = [target] if target else None
    elif not songs or out_dir is None:
        raise click.UsageError("give SONG files and --out DIR (or --raw for stdin/stdout)")
    else:
        chosen = list(targets) or None
    if engine == "onnx":
        if precision == "int8":
            raise click.UsageError(
                "--engine onnx runs the float32 step that `unmixlab export onnx` wrote; "
                "use --engine torch with --precision int8"
            )
        separator = _onnx_separator(model_dir, onnx_path, block_hops, targets)
    else:
        precision = streaming_precision(precision)
        separator = load_streaming_separator(model_dir, chosen, block_hops, precision)
    with torch_threads(threads):
        if raw:
            _stream_raw(separator, rate, channels, sample_format, target)
            return
        for song in songs:
            _stream_file(separator, song, out_dir)


def _onnx_separator(
    model_dir: Path, onnx_path: Path | None, block_hops: int, targets: tuple[str, ...]
) -> StreamingSeparator:
    """The separator running the exported step; its targets and block are the file's."""
    from unmixlab.export import load_onnx_separator

    separator = load_onnx_separator(model_dir, onnx_path or model_dir / "streaming.onnx")
    context = click.get_current_context()
    if (
        context.get_parameter_source("block_hops") is not ParameterSource.DEFAULT
        and block_hops != separator.block_hops
    ):
        raise click.UsageError(
            f"the ONNX step was exported with --block-hops {separator.block_hops}; "
            f"export it again with --block-hops {block_hops}, or leave --block-hops out"
        )
    if targets and list(targets) != separator.targets:
        raise click.UsageError(
            f"the ONNX step separates {', '.join(separator.targets)}; export it with "
            "--targets to change them"
        )
    return separator


def _stream_file(separator: StreamingSeparator, song: Path, out_dir: Path) -> None:
    audio, rate = read_audio(song)
    mixture = match_channels(resample(audio, rate, separator.sample_rate), separator.nb_channels)
    blocks = torch.split(mixture, separator.block_size, -1)
    progress = tqdm(blocks, desc="streaming", unit="block", leave=False, file=sys.stderr)
    measured = MeasuredStream(separator, progress)
    estimates = torch.cat(list(measured), -1)  # (nb_targets, nb_channels, nb_timesteps)
    # MUSDB names every mixture 'mixture.wav': name the output after its track folder
    folder = out_dir / (song.parent.name if song.stem == "mixture" else song.stem)
    for name, estimate in zip(separator.targets, estimates, strict=True):
        write_audio(folder / f"{name}.wav", resample(estimate, separator.sample_rate, rate), rate)
    click.echo(f"{song} -> {folder}/ ({', '.join(separator.targets)})")
    click.echo(f"  {measured.stats().summary()}")


def _stream_raw(
    separator: StreamingSeparator,
    rate: int,
    channels: int,
    sample_format: str,
    target: str | None,
) -> None:
    if rate != separator.sample_rate:
        raise UnmixlabError(
            f"raw stream at {rate} Hz, but the model runs at {separator.sample_rate} Hz",
            f"Resample upstream (e.g. ffmpeg ... -ar {separator.sample_rate})",
        )
    if (
        target is None
        and len(separator.targets) != 1
        or target
        not in (
            None,
            *separator.targets,
        )
    ):
        raise UnmixlabError(
            f"--raw writes one target; the model has {', '.join(separator.targets)}",
            "Pick one with --target",
        )
    index = separator.targets.index(target) if target else 0
    stdout = click.get_binary_stream("stdout")
    if stdout.isatty():
        raise UnmixlabError("raw PCM would go to the terminal", "Pipe stdout into a file or tool")
    dtype, scale = PCM_FORMATS[sample_format]
    blocks = (
        match_channels(block, separator.nb_channels)
        for block in read_pcm(
            click.get_binary_stream("stdin"), channels, separator.block_size, dtype, scale
        )
    )
    measured = MeasuredStream(separator, blocks)
    for estimate in measured:
        stdout.write(encode_pcm(match_channels(estimate[index], channels), dtype, scale))
        stdout.flush()
    if measured.block_seconds:
        click.echo(f"{separator.targets[index]}: {measured.stats().summary()}", err=True)


def read_pcm(
    stream: BinaryIO, channels: int, block_size: int, dtype: str, scale: float
) -> Iterator[torch.Tensor]:
    """Blocks ``(channels, block_size)`` of interleaved PCM (the last one may be shorter)."""
    frame_bytes = channels * np.dtype(dtype).itemsize
    while data := stream.read(block_size * frame_bytes):
        usable = len(data) - len(data) % frame_bytes  # a cut-off last frame is dropped
        samples = np.frombuffer(data[:usable], dtype=dtype).reshape(-1, channels)
        if len(samples):
            audio = samples.T.astype(np.float32)  # float formats are taken as they are
            yield torch.from_numpy(audio / scale if scale != 1.0 else audio)


def encode_pcm(audio: torch.Tensor, dtype: str, scale: float) -> bytes:
    """``(channels, n)`` float audio as interleaved PCM bytes, clipped to full scale.

    Floats are clipped to [-1, 1], integers rounded and clipped to their range.
    """
    data = np.clip(audio.numpy().T, -1.0, 1.0)
    if scale != 1.0:
        data = np.clip(np.round(data * scale), -scale, scale - 1)
    return np.ascontiguousarray(data, dtype=dtype).tobytes()
