"""What a run trained on, in words, so that its times can be read against another machine's."""

import os
import platform
from pathlib import Path

import torch

from unmixlab.device import resolve_device


def describe_hardware(device: str) -> str:
    """``NVIDIA H100 80GB HBM3 (cuda)`` or ``AMD EPYC 7B13, 2 cores, 2 torch threads (cpu)``.

    Args:
        device: the device setting of the runs (``auto``, ``cpu``, ``cuda``, ``cuda:1``).
    """
    kind = resolve_device(device)
    if kind.type == "cuda":
        return f"{torch.cuda.get_device_name(kind)} ({kind})"
    if kind.type == "mps":
        return f"Apple GPU, {platform.machine()} ({kind})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_name()}, {cores} cores, {torch.get_num_threads()} torch threads ({kind})"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"
