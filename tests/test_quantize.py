"""int8 weights (--precision int8): a quarter of the bytes, estimates that move by rounding only."""

from pathlib import Path

import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from pipelines.cli import cli
from tests.test_streaming import TARGETS, noise, random_models, save_folder
from unmixlab.errors import UnmixlabError
from unmixlab.quantize import check_precision, inference_device
from unmixlab.separator import load_separator
from unmixlab.streaming import StreamingSeparator
from unmixlab.validation_sdr import global_sdr

RATE = 16000


def streams(nfft: int, nhop: int, block_hops: int) -> dict[str, StreamingSeparator]:
    """The same models streamed with float32 and with int8 weights."""
    models = random_models(RATE, nfft, 2, 6000)
    return {
        precision: StreamingSeparator(models, RATE, nfft, nhop, block_hops, precision)
        for precision in ("float32", "int8")
    }


@pytest.mark.parametrize(("nfft", "nhop", "block_hops"), [(512, 128, 1), (1024, 256, 2)])
def test_int8_stream_reads_a_quarter_of_the_bytes_and_agrees_with_float32(
    nfft: int, nhop: int, block_hops: int
):
    separators = streams(nfft, nhop, block_hops)
    float_bytes = separators["float32"].step.weight_bytes
    int8_bytes = separators["int8"].step.weight_bytes
    assert int8_bytes < 0.35 * float_bytes  # matrices in one byte, biases stay float32
    audio = noise(2, RATE // 2 + 11)
    out = {p: torch.stack(list(s.separate(audio, RATE).values())) for p, s in separators.items()}
    assert out["int8"].shape == out["float32"].shape == (len(TARGETS), 2, audio.shape[-1])
    assert not torch.equal(out["int8"], out["float32"])  # the weights really are int8
    reference = separators["int8"].offline(audio)  # int8 models in one offline pass
    for target in range(len(TARGETS)):
        # rounding moves each target's estimate by about -50 dB; one target's LSTM state
        # handed to another (a wrong state layout) by -40 dB
        assert global_sdr(out["float32"][target], out["int8"][target]) > 45.0
        assert global_sdr(reference[target], out["int8"][target]) > 45.0


def test_int8_separation_and_stream_commands(tmp_path: Path):
    folder = save_folder(tmp_path / "model", random_models(RATE, 512, 2, 6000), RATE, 512, 128)
    song = tmp_path / "song.wav"
    sf.write(song, noise(2, RATE).numpy().T, RATE)
    runner = CliRunner()
    outputs = {}
    for precision in ("float32", "int8"):
        out = tmp_path / precision
        result = runner.invoke(
            cli,
            ["stream", str(song), "--model", str(folder), "--precision", precision]
            + ["--out", str(out / "stream")],
        )
        assert result.exit_code == 0, result.output
        assert f"{precision} weights" in result.output
        result = runner.invoke(
            cli,
            ["separate", str(song), "--model", str(folder), "--precision", precision]
            + ["--niter", "0", "--out", str(out / "offline")],
        )
        assert result.exit_code == 0, result.output
        outputs[precision] = {
            kind: torch.from_numpy(sf.read(out / kind / "song" / "vocals.wav")[0])
            for kind in ("stream", "offline")
        }
    for kind in ("stream", "offline"):
        assert global_sdr(outputs["float32"][kind], outputs["int8"][kind]) > 30.0
    refused = runner.invoke(
        cli,
        ["stream", str(song), "--model", str(folder), "--precision", "int8", "--engine", "onnx"]
        + ["--out", str(tmp_path / "onnx")],
    )
    assert refused.exit_code == 2 and "--precision int8" in refused.output


def test_int8_runs_on_the_cpu_only():
    assert inference_device("auto", "int8") == torch.device("cpu")
    with pytest.raises(UnmixlabError, match="--precision int8 runs on the CPU"):
        check_precision("int8", "meta")
    with pytest.raises(UnmixlabError, match="--precision bfloat16 is not one of"):
        check_precision("bfloat16")


def test_int8_separator_quantizes_every_linear_and_lstm_layer(tmp_path: Path):
    folder = save_folder(tmp_path / "model", random_models(RATE, 512, 2, 6000), RATE, 512, 128)
    separator = load_separator(folder, precision="int8", device="auto")
    for model in separator.models.values():
        for layer in (model.fc1, model.fc2, model.fc3, model.lstm):
            assert type(layer).__module__.startswith("torch.ao.nn.quantized.dynamic")


@pytest.mark.parametrize(("engine", "weights"), [("x86", "int8"), ("qnnpack", "float32")])
def test_stream_picks_int8_on_x86_by_default(tmp_path: Path, monkeypatch, engine, weights):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"this PyTorch build has no {engine} engine")
    monkeypatch.setattr(torch.backends.quantized, "engine", engine)
    folder = save_folder(tmp_path / "model", random_models(RATE, 512, 2, 6000), RATE, 512, 128)
    song = tmp_path / "song.wav"
    sf.write(song, noise(2, RATE // 4).numpy().T, RATE)
    result = CliRunner().invoke(
        cli, ["stream", str(song), "--model", str(folder), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert f"{weights} weights" in result.output
