"""Device placement on the CPU: resolution, no tensor reaching a module on another device
(torch's ``meta`` device stands in for a GPU), GPU spreading, mixed precision, RNG state."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

from unmixlab.config import TrainConfig
from unmixlab.data.datasets import EpochShuffle
from unmixlab.device import (
    module_device,
    resolve_device,
    restore_rng_state,
    rng_state,
    spread_devices,
)
from unmixlab.errors import UnmixlabError
from unmixlab.model import OpenUnmix
from unmixlab.prepare import prepare
from unmixlab.separator import load_separator
from unmixlab.trainer import Trainer, input_statistics, train
from unmixlab.transforms import Spectrogram
from unmixlab.tuning.search import worker_devices

META = torch.device("meta")


@pytest.fixture
def device_guard() -> Iterator[list[str]]:
    """Fail any module called with a tensor on another device than its own parameters."""
    seen: list[str] = []

    def check(module: nn.Module, args: tuple) -> None:
        if not any(True for _ in (*module.parameters(False), *module.buffers(False))):
            return  # a container: its children are checked
        own = module_device(module)
        for arg in args:
            if isinstance(arg, torch.Tensor) and arg.device != own:
                raise AssertionError(
                    f"{type(module).__name__} on {own} received a tensor on {arg.device}"
                )
        seen.append(f"{type(module).__name__}@{own}")

    handle = register_module_forward_pre_hook(check)
    yield seen
    handle.remove()


def test_auto_is_cuda_exactly_when_cuda_is_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_bad_or_missing_devices_are_refused_with_the_flag() -> None:
    with pytest.raises(UnmixlabError, match="unknown device 'gpu'") as error:
        resolve_device("gpu")
    assert "--device" in str(error.value)
    missing = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UnmixlabError, match=rf"--device cuda:{missing}: .*visible"):
        resolve_device(f"cuda:{missing}")
    with pytest.raises(ValueError, match="unknown device 'cuda:x'"):
        TrainConfig(device="cuda:x")


def test_the_guard_catches_a_tensor_on_another_device(device_guard: list[str]) -> None:
    with pytest.raises(AssertionError, match="STFT on meta received a tensor on cpu"):
        Spectrogram(512, 128).to(META)(torch.zeros(1, 2, 4000))


@pytest.mark.slow
def test_training_moves_each_batch_to_the_model_device(
    tiny_config: TrainConfig, device_guard: list[str]
) -> None:
    trainer = Trainer(tiny_config, prepare(tiny_config.data))
    trainer._build(OpenUnmix(tiny_config.architecture()))
    trainer.model.to(META), trainer.encoder.to(META)
    trainer.device = META
    mixture, target = torch.rand(2, 2, 16000), torch.rand(2, 2, 16000)  # on the CPU
    assert trainer._loss(mixture, target).device == META
    with torch.no_grad():  # validation: a whole track, in chunks and the rest
        assert trainer._track_loss(torch.rand(2, 40000), torch.rand(2, 40000)).device == META
    assert {"STFT@meta", "OpenUnmix@meta"} <= set(device_guard)


def test_input_statistics_feed_the_encoder_on_its_device(device_guard: list[str]) -> None:
    tracks = [(torch.rand(2, 8000), None), (torch.rand(2, 8000), None)]
    with pytest.raises(NotImplementedError):  # meta tensors end at the copy back to the CPU
        input_statistics(tracks, Spectrogram(512, 128).to(META))
    assert device_guard == ["STFT@meta", "STFT@meta"]  # both tracks, on the encoder's device
    mean, std = input_statistics(tracks, Spectrogram(512, 128))
    assert mean.device.type == std.device.type == "cpu" and mean.shape == (257,)


def test_separator_on_a_device_returns_cpu_audio(tiny_config: TrainConfig) -> None:
    result = train(tiny_config.updated(epochs=1, device="cpu"))
    separator = load_separator(result.output, niter=0, device="auto")
    assert module_device(separator) == resolve_device("auto")
    estimates = separator.separate(torch.rand(2, 8000), 16000, progress=False)
    assert estimates["vocals"].device.type == "cpu"


def test_spread_devices_round_robin() -> None:
    assert spread_devices(5, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert spread_devices(2, 4) == ["cuda:0", "cuda:1"]
    assert spread_devices(3, 0) == ["cpu", "cpu", "cpu"]
    assert worker_devices("auto", 3, 2) == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices("auto", 2, 0) == [None, None]  # the study's own setting
    assert worker_devices("cuda:1", 2, 4) == [None, None]  # an explicit device is kept


def test_epoch_shuffle_gives_each_epoch_its_own_order() -> None:
    sampler = EpochShuffle(10, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(index for _, index in first) == list(range(10))
    assert {epoch for epoch, _ in first} == {1}
    assert list(sampler) == first
    sampler.set_epoch(2)
    assert [i for _, i in sampler] != [i for _, i in first]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_to_finite_losses(tiny_config: TrainConfig, amp: str) -> None:
    result = train(tiny_config.updated(amp=amp, epochs=1))
    assert all(map(torch.isfinite, torch.tensor(result.history.train_loss)))
    state = torch.load(Path(tiny_config.run.output) / "vocals.chkpnt", weights_only=True)
    assert bool(state["scaler"]) == (amp == "fp16")  # fp16 keeps its gradient scale


def test_rng_state_round_trip_on_cpu() -> None:
    state = rng_state(torch.device("cpu"))
    expected = torch.rand(3)
    restore_rng_state(state, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_rng_state_round_trip() -> None:
    device = torch.device("cuda")
    state = rng_state(device)
    assert "cuda" in state
    expected = torch.rand(3, device=device)
    restore_rng_state(state, device)
    assert torch.equal(torch.rand(3, device=device), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resume_on_cuda_equals_an_uninterrupted_run(tiny_config: TrainConfig, tmp_path) -> None:
    config = tiny_config.updated(device="cuda", deterministic=True, epochs=3)
    straight = train(config.updated(output=tmp_path / "straight"))
    train(config.updated(epochs=2))
    resumed = train(config, resume=True)
    assert resumed.history.train_loss == straight.history.train_loss
    assert resumed.history.valid_loss == straight.history.valid_loss


@pytest.mark.slow
def test_gpu_benchmark_runs_quick_on_the_cpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "gpu_train.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--workers", "0", "--epochs", "1"]
        + ["--skip-seed", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert len(rows) == 1 + 2 * 4  # header, then per size: two limits, two end-to-end rows
    assert all(float(row.split("|")[3]) > 0 for row in rows[1:])


@pytest.mark.slow
def test_train_on_a_missing_gpu_is_one_error_line_and_leaves_nothing(
    synth_root: Path, tmp_path: Path
) -> None:
    import subprocess

    missing = torch.cuda.device_count() if torch.cuda.is_available() else 0
    output = tmp_path / "model"
    done = subprocess.run(
        ["unmixlab", "train", "--root", str(synth_root), "--is-wav", "--epochs", "1"]
        + ["--device", f"cuda:{missing}", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"error: --device cuda:{missing}:" in done.stderr and "Traceback" not in done.stderr
    assert not output.exists()
