"""Where training and separation run: ``--device auto|cpu|cuda|cuda:N``, one resolver for all.

Also the GPU-specific state a run carries: the random number generators of a device (saved in
checkpoints for an exact resume), deterministic kernels, the tags naming the hardware, and the
round-robin placement of parallel runs on the visible GPUs.
"""

import os
import re
from typing import Any

import torch

from unmixlab.errors import UnmixlabError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"


def check_device_spec(spec: str) -> str:
    """Return ``spec`` if it names a device this package can resolve.

    Raises:
        ValueError: ``spec`` is not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if not DEVICE_PATTERN.fullmatch(spec):
        raise ValueError(f"unknown device '{spec}': use {DEVICE_HELP}")
    return spec


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The torch device ``spec`` names; ``auto`` is CUDA when available, else the CPU.

    Raises:
        UnmixlabError: ``spec`` is malformed, or names a CUDA device this machine lacks.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    try:
        check_device_spec(spec)
    except ValueError as error:
        raise UnmixlabError(str(error), "Pass --device " + DEVICE_HELP) from error
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            visible = f"{count} CUDA device(s) visible" if count else "no CUDA device visible"
            raise UnmixlabError(
                f"--device {spec}: {visible}",
                "Pass --device auto or cpu, or a cuda:N with N below the GPU count "
                "(check CUDA_VISIBLE_DEVICES and nvidia-smi)",
            )
    return device


def visible_gpu_count() -> int:
    """How many CUDA devices this process sees (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def spread_devices(nb_jobs: int, nb_gpus: int) -> list[str]:
    """One device per parallel job, round-robin over ``nb_gpus`` GPUs (``cpu`` when none).

    ``spread_devices(5, 2)`` is ``["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]``.
    """
    if nb_gpus <= 0:
        return ["cpu"] * nb_jobs
    return [f"cuda:{job % nb_gpus}" for job in range(nb_jobs)]


def set_deterministic(deterministic: bool, device: torch.device) -> None:
    """Choose bit-exact kernels (``deterministic``) or the fastest ones (cuDNN autotuning).

    Deterministic mode sets ``torch.use_deterministic_algorithms`` and turns cuDNN's autotuner
    off; on CUDA it also needs ``CUBLAS_WORKSPACE_CONFIG`` (set here if unset, before cuBLAS
    starts). cuDNN's LSTM and ``torch.stft`` then repeat bit for bit on the same GPU model,
    driver and library versions; other GPUs or versions may differ in the last bits.
    """
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and device.type == "cuda"


def rng_state(device: torch.device) -> dict[str, Any]:
    """The random generators a training on ``device`` draws from (CPU, and CUDA if used)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: Any, device: torch.device) -> None:
    """Restore what :func:`rng_state` saved (a bare CPU state from older checkpoints too)."""
    if isinstance(state, torch.Tensor):
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def device_tags(device: torch.device) -> dict[str, str]:
    """MLflow tags naming the hardware and the library versions a run used."""
    tags = {"device": str(device), "torch_version": torch.__version__}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        tags["gpu_name"] = torch.cuda.get_device_name(index)
        tags["cuda_version"] = str(torch.version.cuda)
        tags["cudnn_version"] = str(torch.backends.cudnn.version())
    return tags


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (the CPU when it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
