"""int8 inference on the CPU: PyTorch's dynamic quantization of the linear and LSTM layers.

``torch.ao.quantization.quantize_dynamic`` stores every ``nn.Linear`` and ``nn.LSTM`` weight
as int8 with one scale per tensor and quantizes the activations on the fly (fbgemm / x86
kernels). Separation reads a quarter of the bytes: what bounds streaming, whose blocks are
matrix-vector products over every weight, so a four-target model that did not fit in the CPU's
cache does. The cost is rounding: ``benchmarks/realtime.py`` prints the SDR of int8 estimates
against the float32 ones, ``benchmarks/realtime_quality.py`` museval's SDR of both.

(torchao, which PyTorch names as the successor, has no fast CPU path for this: its int8
dynamic linear took 2.7 ms where this one takes 0.08 ms for one 2974 x 1024 block.)
"""

import warnings
from typing import Literal, get_args

import torch
from torch import nn

from unmixlab.device import resolve_device
from unmixlab.errors import UnmixlabError

Precision = Literal["float32", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
QUANTIZED_LAYERS = (nn.Linear, nn.LSTM)


def check_precision(precision: str, device: torch.device | str = "cpu") -> None:
    """Refuse a precision this build or device cannot run, naming the flag and the fix."""
    if precision not in PRECISIONS:
        raise UnmixlabError(
            f"--precision {precision} is not one of {', '.join(PRECISIONS)}",
            "Use --precision float32 or --precision int8",
        )
    if precision == "int8":
        if torch.device(device).type != "cpu":
            raise UnmixlabError(
                f"--precision int8 runs on the CPU, not on {device}",
                "Use --device cpu with int8, or --precision float32 on the GPU",
            )
        if torch.backends.quantized.engine == "none":
            raise UnmixlabError(
                "this PyTorch build has no quantized CPU engine (fbgemm, x86 or qnnpack)",
                "Use --precision float32",
            )


def streaming_precision(spec: str) -> Precision:
    """The precision ``unmixlab stream --precision spec`` runs: ``auto`` picks for real time.

    ``auto`` is int8 where PyTorch's quantized engine is fbgemm / x86 (where
    ``benchmarks/realtime.py`` measured int8 streaming at 36-49 % of float32's cost, its
    estimates within -58 dB of float32's), float32 elsewhere.
    """
    if spec != "auto":
        return spec
    return "int8" if torch.backends.quantized.engine in ("fbgemm", "x86") else "float32"


def inference_device(spec: str, precision: Precision) -> torch.device:
    """The device ``--device spec`` names for ``precision``: ``auto`` is the CPU for int8.

    Raises:
        UnmixlabError: the device is unavailable, or cannot run ``precision``.
    """
    device = resolve_device("cpu" if precision == "int8" and spec == "auto" else spec)
    check_precision(precision, device)
    return device


def quantize(module: nn.Module) -> nn.Module:
    """``module`` with its linear and LSTM layers dynamically quantized to int8 (a copy).

    The module must be in eval mode; the copy runs on the CPU only.
    """
    check_precision("int8")
    with warnings.catch_warnings():  # torch.ao's deprecation notices, not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(
            module, set(QUANTIZED_LAYERS), dtype=torch.qint8, inplace=False
        )


def stored_bytes(module: nn.Module, precision: Precision) -> int:
    """Bytes of ``module``'s parameters and buffers once stored in ``precision``.

    int8 stores the weight matrices of the quantized layers in one byte per value; biases,
    batch norm and scales stay float32.
    """
    total = sum(buffer.numel() * buffer.element_size() for buffer in module.buffers())
    for layer in module.modules():
        for name, parameter in layer.named_parameters(recurse=False):
            one_byte = (
                precision == "int8"
                and isinstance(layer, QUANTIZED_LAYERS)
                and name.startswith("weight")
            )
            total += parameter.numel() * (1 if one_byte else parameter.element_size())
    return total
