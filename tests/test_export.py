"""The streaming step exported to ONNX equals the PyTorch streaming separator."""

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_streaming import noise, random_model, random_models, save_folder

from pipelines.cli import cli
from unmixlab.errors import UnmixlabError
from unmixlab.export import load_onnx_separator
from unmixlab.streaming import load_streaming_separator

pytest.importorskip("onnxruntime")

RATE, NFFT, NHOP = 16000, 512, 128


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two stereo targets of different bandwidths, exported with 1-hop blocks by the CLI."""
    folder = save_folder(
        tmp_path_factory.mktemp("export") / "model",
        random_models(RATE, NFFT, 2, 6000, ("vocals", "drums")),
        RATE,
        NFFT,
        NHOP,
    )
    out = folder / "streaming.onnx"
    result = CliRunner().invoke(cli, ["export", "onnx", str(folder), str(out), "--block-hops", "1"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime matches the PyTorch streaming separator" in result.output
    return folder, out


@pytest.mark.slow
def test_onnx_step_streams_as_the_torch_separator(exported: tuple[Path, Path]):
    folder, out = exported
    onnx_separator = load_onnx_separator(folder, out)
    torch_separator = load_streaming_separator(folder, block_hops=1)
    assert onnx_separator.targets == torch_separator.targets == ["drums", "vocals"]
    # written by the one atomic writer: the same mode as the model files beside it
    assert out.stat().st_mode & 0o777 == (folder / "vocals.json").stat().st_mode & 0o777
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert onnx_separator.latency_samples == NFFT  # 1-hop blocks: nfft samples
    audio = noise(2, 40 * NHOP + 17)
    streamed = torch.stack(list(onnx_separator.separate(audio, RATE).values()))
    expected = torch.stack(list(torch_separator.separate(audio, RATE).values()))
    assert expected.abs().max() > 0.05
    assert (streamed - expected).abs().max() <= 1e-4
    # and so the offline causal reference too
    assert (streamed - torch_separator.offline(audio)).abs().max() <= 1e-4


@pytest.mark.slow
def test_stream_command_runs_the_onnx_engine(exported: tuple[Path, Path]):
    folder, out = exported
    audio = noise(2, 3000)
    raw = ["stream", "--raw", "--model", str(folder), "--rate", str(RATE), "--channels", "2"]
    result = CliRunner().invoke(
        cli,
        raw + ["--engine", "onnx", "--onnx", str(out), "--target", "drums"],
        input=audio.numpy().T.astype("<f4").tobytes(),
    )
    assert result.exit_code == 0, result.stderr
    written = np.frombuffer(result.stdout_bytes, dtype="<f4").reshape(-1, 2).T
    expected = load_streaming_separator(folder, ["drums"], 1).offline(audio)[0].numpy()
    assert np.abs(written - np.clip(expected, -1, 1)).max() <= 1e-4  # clipped to full scale
    assert "algorithmic latency 32.0 ms" in result.stderr  # 512 samples at 16 kHz

    result = CliRunner().invoke(cli, raw + ["--engine", "onnx", "--block-hops", "2"])
    assert result.exit_code != 0 and "exported with --block-hops 1" in result.output


def test_bad_exports_stop_with_a_clear_error(tmp_path: Path):
    models = random_models(RATE, NFFT, 1, 4000, ("vocals",))
    models["bass"] = random_model(NFFT, 1, 100, seed=5, unidirectional=False)
    folder = save_folder(tmp_path / "model", models, RATE, NFFT, NHOP)
    out = tmp_path / "step.onnx"
    with pytest.raises(UnmixlabError, match="'bass' has a bidirectional LSTM"):
        CliRunner().invoke(cli, ["export", "onnx", str(folder), str(out)], catch_exceptions=False)
    assert list(tmp_path.iterdir()) == [folder]  # nothing half-written
    with pytest.raises(UnmixlabError, match="Export it first: unmixlab export onnx"):
        load_onnx_separator(folder, out)
    out.write_bytes(b"not onnx")
    with pytest.raises(UnmixlabError, match="not a streaming step exported by unmixlab"):
        load_onnx_separator(folder, out)
