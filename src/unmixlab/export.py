"""The streaming step exported to ONNX, and run with onnxruntime.

``unmixlab export onnx MODEL_DIR OUT.onnx`` writes :class:`unmixlab.streaming_step.StreamingStep`
as one ONNX graph: one block of audio in, one block of every target's estimate out, with the
STFT overlap (``history``), the overlap-add tail (``tail``) and the LSTM state (``h``, ``c``)
as explicit inputs and outputs (:data:`INPUTS`, :data:`OUTPUTS`; shapes in
:mod:`unmixlab.streaming_step`). The STFT and ISTFT are inside the graph (ONNX ``DFT``). The
file's metadata holds the sample rate, nfft, hop, block hops and targets, so
:class:`OnnxStep` can stand in for the PyTorch step in
:class:`unmixlab.streaming.StreamingSeparator` (``unmixlab stream --engine onnx``).

Needs the ``export`` extra (``onnx``, ``onnxscript``, ``onnxruntime``).
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unmixlab.errors import UnmixlabError
from unmixlab.files import atomic_path
from unmixlab.streaming import StreamingSeparator, load_streaming_separator

INPUTS = ("block", "history", "tail", "h", "c")
OUTPUTS = ("estimates", "next_history", "next_tail", "next_h", "next_c")
METADATA_KEY = "unmixlab_streaming"
TOLERANCE = 1e-4  # max abs difference from the PyTorch streaming separator


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as error:
        raise UnmixlabError(
            f"exporting to ONNX needs the '{module}' package",
            "Install the export extra: pip install 'unmixlab[export]'",
        ) from error


def export_onnx(
    model_dir: Path,
    out: Path,
    block_hops: int = 2,
    targets: list[str] | None = None,
    check_blocks: int = 8,
) -> float:
    """Export the streaming step of the models in ``model_dir`` and check it in onnxruntime.

    The check streams ``check_blocks`` blocks of noise through onnxruntime and through
    :class:`StreamingSeparator`; the file is kept only when every estimate agrees to
    :data:`TOLERANCE` (written under a temporary name, then renamed).

    Args:
        model_dir: reference-layout folder of unidirectional models.
        out: the ``.onnx`` file to write.
        block_hops: hops per block (fixed in the graph).
        targets: targets to export (default: all in the folder).
        check_blocks: blocks streamed by the check.

    Returns:
        the largest absolute difference the check found.

    Raises:
        UnmixlabError: bidirectional or missing models, missing packages, or a check failure.
    """
    for module in ("onnxscript", "onnxruntime"):
        _require(module)
    onnx = _require("onnx")

    separator = load_streaming_separator(model_dir, targets, block_hops)
    step = separator.step
    example = (torch.zeros(separator.nb_channels, separator.block_size), *step.initial_state())
    # the one atomic writer: the file appears only after the check, with the artifacts' mode
    with atomic_path(Path(out)) as tmp:
        # the exporter warns about torchvision's operators, which this graph never uses
        registration = logging.getLogger("torch.onnx._internal.exporter._registration")
        with torch.no_grad(), _quiet(registration):
            program = torch.onnx.export(
                step, example, dynamo=True, input_names=INPUTS, output_names=OUTPUTS, verbose=False
            )
        model = program.model_proto
        meta = model.metadata_props.add()
        meta.key, meta.value = METADATA_KEY, json.dumps(stream_metadata(separator))
        onnx.save(model, str(tmp))
        error = check_against_torch(OnnxStep(tmp), separator, check_blocks)
        if not error <= TOLERANCE:
            raise UnmixlabError(
                f"the ONNX step differs from the PyTorch streaming separator by {error:.2e} "
                f"(tolerance {TOLERANCE:g})",
                "Report this with the model folder; stream with --engine torch meanwhile",
                model_dir,
            )
    return error


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only errors from ``logger`` while the block runs."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def stream_metadata(separator: StreamingSeparator) -> dict:
    """What a runner needs besides the graph: rate, STFT, block and target names."""
    return {
        "sample_rate": separator.sample_rate,
        "nfft": separator.nfft,
        "nhop": separator.nhop,
        "block_hops": separator.block_hops,
        "nb_channels": separator.nb_channels,
        "targets": separator.targets,
    }


def check_against_torch(step: "OnnxStep", separator: StreamingSeparator, blocks: int) -> float:
    """Largest absolute difference of the estimates over ``blocks`` blocks of noise."""
    generator = torch.Generator().manual_seed(0)
    audio = 0.3 * torch.randn(
        separator.nb_channels, blocks * separator.block_size, generator=generator
    )
    state = step.initial_state()
    separator.reset()
    error = 0.0
    for block in torch.split(audio, separator.block_size, -1):
        estimates, *state = step(block, *state)
        expected = separator.process_block(block)
        error = max(error, float((estimates - expected).abs().max()))
    return error


class OnnxStep:
    """An exported step run by onnxruntime, called like :class:`StreamingStep`.

    Args:
        path: the ``.onnx`` file written by :func:`export_onnx`.
        threads: onnxruntime intra-op threads.

    Raises:
        UnmixlabError: missing onnxruntime, or a file that is not an exported streaming step.
    """

    def __init__(self, path: Path, threads: int = 1):
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            meta = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except Exception as error:  # onnxruntime raises its own types for unreadable files
            raise UnmixlabError(
                f"not a streaming step exported by unmixlab ({type(error).__name__})",
                "Export one with `unmixlab export onnx MODEL_DIR OUT.onnx`",
                path,
            ) from error
        self.meta = meta
        self.path = Path(path)
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self._shapes = [tuple(inputs[name]) for name in INPUTS[1:]]

    def initial_state(self) -> tuple[Tensor, ...]:
        """Silence before the stream and zero LSTM state: ``(history, tail, h, c)``."""
        return tuple(torch.zeros(shape) for shape in self._shapes)

    def __call__(self, block: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """``(estimates, history, tail, h, c)`` for the next block, as the PyTorch step."""
        feeds = {
            name: np.ascontiguousarray(value.numpy(), dtype=np.float32)
            for name, value in zip(INPUTS, (block, *state), strict=True)
        }
        return tuple(torch.from_numpy(value) for value in self.session.run(None, feeds))


def load_onnx_separator(model_dir: Path, path: Path, threads: int = 1) -> StreamingSeparator:
    """A :class:`StreamingSeparator` for ``model_dir`` whose blocks run in onnxruntime.

    Raises:
        UnmixlabError: the file is missing, or was exported from other models or settings.
    """
    if not Path(path).is_file():
        raise UnmixlabError(
            "no exported streaming step here",
            f"Export it first: unmixlab export onnx {model_dir} {path}",
            path,
        )
    step = OnnxStep(path, threads)
    separator = load_streaming_separator(model_dir, step.meta["targets"], step.meta["block_hops"])
    if stream_metadata(separator) != step.meta:
        raise UnmixlabError(
            f"exported from other settings than the models in {model_dir}",
            f"Export it again: unmixlab export onnx {model_dir} {path}",
            path,
        )
    separator.use_engine(step)
    return separator
