"""Streaming separation: equal to the offline causal reference, latency, CLI, real-time figures."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipelines.cli import cli
from unmixlab.errors import UnmixlabError
from unmixlab.experiment import load_preset
from unmixlab.model import ModelConfig, OpenUnmix
from unmixlab.model_io import save_torch, write_json, write_separator_json
from unmixlab.realtime import (
    RealtimeSettings,
    impulse_latency,
    measure_model,
    measure_realtime,
)
from unmixlab.streaming import StreamingSeparator, load_streaming_separator
from unmixlab.tracking.realtime import log_realtime
from unmixlab.trainer import train
from unmixlab.transforms import bandwidth_to_max_bin

TARGETS = ("vocals", "drums", "bass")


def random_model(
    nfft: int, channels: int, max_bin: int, seed: int, unidirectional: bool = True
) -> OpenUnmix:
    """A frozen model whose normalisations and batch-norm statistics are all non-trivial."""
    torch.manual_seed(seed)
    config = ModelConfig(
        nb_bins=nfft // 2 + 1,
        nb_channels=channels,
        hidden_size=16,
        unidirectional=unidirectional,
        max_bin=max_bin,
    )
    model = OpenUnmix(config)
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.1)
        model.input_mean.normal_(0, 0.5)
        model.input_scale.uniform_(0.5, 2.0)
        model.output_scale.uniform_(0.5, 1.5)
        model.output_mean.uniform_(0.5, 1.5)
    model.freeze()
    return model


def random_models(
    rate: int, nfft: int, channels: int, bandwidth: float, targets: tuple[str, ...] = TARGETS
) -> dict[str, OpenUnmix]:
    """One model per target; each target crops a little narrower than the previous one."""
    max_bin = bandwidth_to_max_bin(rate, nfft, bandwidth)
    return {
        target: random_model(nfft, channels, max_bin - 3 * i, seed=i)
        for i, target in enumerate(targets)
    }


def identity_model(nfft: int) -> OpenUnmix:
    """A model whose mask is 1 everywhere: its estimate is the mixture itself."""
    model = random_model(nfft, 1, nfft // 2 + 1, seed=0)
    with torch.no_grad():
        model.fc3.weight.zero_()
        model.bn3.running_mean.zero_()
        model.bn3.bias.zero_()
        model.output_mean.fill_(1.0)
    return model


def save_folder(folder: Path, models: dict[str, OpenUnmix], rate: int, nfft: int, nhop: int):
    """Write ``models`` in the reference layout."""
    folder.mkdir(parents=True)
    for target, model in models.items():
        save_torch(model.state_dict(), folder / f"{target}.pth")
        write_json(folder / f"{target}.json", {"model": model.config.model_dump()})
    channels = next(iter(models.values())).config.nb_channels
    write_separator_json(folder, rate, nfft, nhop, channels)
    return folder


def noise(channels: int, length: int, seed: int = 1) -> torch.Tensor:
    return 0.3 * torch.randn(channels, length, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("rate", "nfft", "nhop", "channels", "bandwidth", "block_hops"),
    [
        (16000, 512, 128, 1, 4000, 1),
        (16000, 512, 128, 2, 8000, 3),
        (16000, 1024, 256, 2, 4000, 8),
        (44100, 4096, 1024, 2, 16000, 1),
        (44100, 4096, 1024, 2, 16000, 2),
        (44100, 4096, 1024, 1, 8000, 4),
        (44100, 1024, 256, 2, 16000, 1),  # the low-latency presets: 23.2 ms
        (44100, 512, 128, 2, 16000, 1),  # 11.6 ms
    ],
)
def test_streaming_equals_offline_causal_reference(
    rate: int, nfft: int, nhop: int, channels: int, bandwidth: float, block_hops: int
):
    separator = StreamingSeparator(
        random_models(rate, nfft, channels, bandwidth), rate, nfft, nhop, block_hops
    )
    audio = noise(channels, int(0.5 * rate) + 37)  # not a whole number of blocks
    reference = separator.offline(audio)
    streamed = separator.separate(audio, rate)
    assert list(streamed) == list(TARGETS)
    streamed = torch.stack(list(streamed.values()))
    assert streamed.shape == reference.shape == (len(TARGETS), channels, audio.shape[-1])
    assert reference.abs().max() > 0.05  # the models do something
    assert (reference[0] - reference[1]).abs().max() > 0.01  # and differ from each other
    assert (streamed - reference).abs().max() <= 1e-4


def test_output_stream_is_the_estimate_delayed_and_never_looks_ahead():
    rate, nfft, nhop, block_hops = 16000, 512, 128, 2
    separator = StreamingSeparator(random_models(rate, nfft, 2, 6000), rate, nfft, nhop, block_hops)
    audio = noise(2, 20 * separator.block_size)
    reference = separator.offline(audio)
    separator.reset()
    stream = torch.cat(
        [separator.process_block(b) for b in torch.split(audio, separator.block_size, -1)], -1
    )
    delay = nfft - nhop
    assert (stream[..., delay:] - reference[..., :-delay]).abs().max() <= 1e-4
    # changing the input from a hop boundary n on leaves the output stream before n unchanged
    n = 11 * separator.block_size + nhop  # inside a block: its first hop stays the same too
    changed = audio.clone()
    changed[:, n:] = noise(2, audio.shape[-1] - n, seed=9)
    separator.reset()
    other = torch.cat(
        [separator.process_block(b) for b in torch.split(changed, separator.block_size, -1)], -1
    )
    assert torch.equal(other[..., :n], stream[..., :n])
    assert (other[..., n:] - stream[..., n:]).abs().max() > 0.01


def test_bidirectional_models_are_refused(tmp_path: Path):
    models = random_models(16000, 512, 1, 8000)
    models["bass"] = random_model(512, 1, 100, seed=5, unidirectional=False)
    with pytest.raises(UnmixlabError, match="'bass' has a bidirectional LSTM"):
        StreamingSeparator(models, 16000, 512, 128)
    folder = save_folder(tmp_path / "model", models, 16000, 512, 128)
    with pytest.raises(UnmixlabError, match="bidirectional.*--unidirectional"):
        load_streaming_separator(folder, ["vocals", "bass"])
    assert load_streaming_separator(folder, ["vocals"]).targets == ["vocals"]


@pytest.mark.parametrize(
    ("rate", "nfft", "nhop", "block_hops", "samples", "ms"),
    [
        (44100, 4096, 1024, 2, 5120, 116.09977324263039),
        (44100, 4096, 1024, 1, 4096, 92.87981859410431),
        (16000, 512, 128, 4, 896, 56.0),
        (16000, 1024, 256, 8, 2816, 176.0),
    ],
)
def test_latency_arithmetic(
    rate: int, nfft: int, nhop: int, block_hops: int, samples: int, ms: float
):
    separator = StreamingSeparator(
        random_models(rate, nfft, 1, 4000, ("vocals",)), rate, nfft, nhop, block_hops
    )
    assert separator.latency_samples == samples == nfft + (block_hops - 1) * nhop
    assert separator.latency_ms == pytest.approx(ms, abs=1e-9)
    assert separator.block_ms == pytest.approx(1000 * block_hops * nhop / rate)


def test_latency_is_the_worst_delay_of_an_impulse():
    """With a pass-through model, an impulse comes out exactly ``latency`` after its block."""
    nfft, nhop, block_hops = 256, 64, 3
    separator = StreamingSeparator({"vocals": identity_model(nfft)}, 16000, nfft, nhop, block_hops)
    size, delays = separator.block_size, []
    # an impulse at each hop boundary of a block, one sample either side, and the next block
    for position in {2 * size + hop * nhop + d for hop in range(4) for d in (-1, 0, 1, 7)}:
        audio = torch.zeros(1, 8 * size)
        audio[0, position] = 1.0
        separator.reset()
        for index, block in enumerate(torch.split(audio, size, -1)):
            out = separator.process_block(block)[0, 0]
            if out.abs().max() > 0.5:
                # the impulse is reconstructed exactly, nfft - nhop samples later in the stream
                assert out.argmax() == (position + nfft - nhop) % size
                assert out.abs().sum() == pytest.approx(1.0, abs=1e-4)
                delays.append((index + 1) * size - position)  # input consumed minus position
                break
    assert max(delays) == separator.latency_samples
    assert min(delays) == nfft - nhop + 1


@pytest.mark.parametrize(
    ("nfft", "nhop", "block_hops", "ms"),
    [(4096, 1024, 2, 116.1), (1024, 256, 1, 23.2), (512, 128, 1, 11.6), (256, 64, 3, None)],
)
def test_impulse_latency_is_the_algorithmic_latency(
    nfft: int, nhop: int, block_hops: int, ms: float | None
):
    measured = impulse_latency(nfft, nhop, block_hops)
    separator = StreamingSeparator(
        {"vocals": random_model(nfft, 1, 20, seed=0)}, 44100, nfft, nhop, block_hops
    )
    assert measured == separator.latency_samples == nfft + (block_hops - 1) * nhop
    if ms is not None:
        assert 1000 * measured / 44100 == pytest.approx(ms, abs=0.05)


@pytest.mark.parametrize(
    ("preset", "latency_ms"), [("realtime-23ms", 23.2), ("realtime-12ms", 11.6)]
)
def test_low_latency_presets_train_and_stream(
    preset: str, latency_ms: float, synth_root: Path, tmp_path: Path
):
    """Each low-latency preset, shrunk to a tiny model on the test data, trains and streams."""
    shrink = ["hidden_size=8", "nb_layers=1", "epochs=1", "batch_size=2"]
    shrink += ["samples_per_track=1", "seq_dur=0.5"]
    config = load_preset(
        preset,
        [f"train.{s}" for s in shrink]
        + [f"data.root={synth_root}", f"data.cache_dir={tmp_path / 'cache'}"],
    )
    assert config.train.model.unidirectional and config.train.data.sample_rate == 44100
    model_dir = train(config.train_config("vocals", tmp_path / "model")).output
    separator = load_streaming_separator(model_dir, block_hops=1)
    assert separator.latency_ms == pytest.approx(latency_ms, abs=0.05)
    assert impulse_latency(separator.nfft, separator.nhop, 1) == separator.latency_samples
    audio = noise(2, 4000)
    streamed = separator.separate(audio, 44100)["vocals"]
    assert (streamed - separator.offline(audio)[0]).abs().max() <= 1e-4


@pytest.fixture
def unidirectional_model(tiny_config) -> Path:
    """A tiny unidirectional vocals model trained on the synthetic data (16 kHz, nfft 512)."""
    return train(tiny_config.updated(unidirectional=True)).output


def test_cli_streams_a_file_into_stems(unidirectional_model: Path, synth_root: Path, tmp_path):
    song = next((synth_root / "test").iterdir()) / "mixture.wav"
    result = CliRunner().invoke(
        cli,
        ["stream", str(song), "--model", str(unidirectional_model), "--block-hops", "2"]
        + ["--precision", "float32", "--out", str(tmp_path / "stems")],
    )
    assert result.exit_code == 0, result.output
    assert "real-time factor" in result.output
    assert "worst block" in result.output
    assert "algorithmic latency 40.0 ms" in result.output  # (512 + 128) / 16 kHz
    written, rate = sf.read(tmp_path / "stems" / song.parent.name / "vocals.wav", dtype="float32")
    mixture, _ = sf.read(song, dtype="float32", always_2d=True)
    assert rate == 16000 and written.shape == mixture.shape
    separator = load_streaming_separator(unidirectional_model)
    reference = separator.offline(torch.from_numpy(mixture.T.copy()))[0].numpy().T
    assert np.abs(written - np.clip(reference, -1, 1)).max() <= 1e-4 + 1 / 32768


def test_cli_pipes_raw_pcm(tmp_path: Path):
    rate, nfft, nhop = 16000, 512, 128
    models = random_models(rate, nfft, 2, 8000, ("vocals", "drums"))
    folder = save_folder(tmp_path / "model", models, rate, nfft, nhop)
    audio = noise(2, 5000)
    raw = ["stream", "--raw", "--model", str(folder), "--rate", str(rate), "--channels", "2"]
    result = CliRunner().invoke(
        cli,
        raw + ["--target", "drums", "--precision", "float32"],
        input=audio.numpy().T.astype("<f4").tobytes(),
    )
    assert result.exit_code == 0, result.stderr
    out = np.frombuffer(result.stdout_bytes, dtype="<f4").reshape(-1, 2).T
    expected = StreamingSeparator({"drums": models["drums"]}, rate, nfft, nhop, 2).offline(audio)
    assert out.shape == (2, 5000)
    assert np.abs(out - np.clip(expected[0].numpy(), -1, 1)).max() <= 1e-4  # full scale
    assert "real-time factor" in result.stderr

    mono = np.round(audio[0].numpy() * 16000).astype("<i2")  # mono s16le in, mono s16le out
    result = CliRunner().invoke(
        cli,
        raw[:-1] + ["1", "--format", "s16le", "--target", "vocals"],
        input=mono.tobytes(),
    )
    assert result.exit_code == 0, result.stderr
    assert np.frombuffer(result.stdout_bytes, dtype="<i2").shape == (5000,)

    result = CliRunner().invoke(cli, raw, input=b"")
    assert isinstance(result.exception, UnmixlabError)
    assert "Pick one with --target" in str(result.exception)
    result = CliRunner().invoke(cli, raw[:5] + ["44100"] + raw[6:] + ["--target", "vocals"])
    assert isinstance(result.exception, UnmixlabError)
    assert "runs at 16000 Hz" in str(result.exception)


@pytest.mark.slow
def test_measure_and_log_realtime_figures(tmp_path: Path, isolated_mlflow: str):
    folder = save_folder(tmp_path / "model", random_models(16000, 512, 2, 8000), 16000, 512, 128)
    threads = torch.get_num_threads()
    figures = measure_realtime(folder, block_hops=4, seconds=0.5)
    assert torch.get_num_threads() == threads
    assert figures["latency_ms"] == pytest.approx(1000 * (512 + 3 * 128) / 16000)
    assert figures["block_ms"] == pytest.approx(32.0)
    assert figures["blocks"] == math.ceil((8000 + 384) / 512)  # the input, then the flush
    # load stretches the figures: only what holds on any machine is asserted
    assert 0 < figures["stream_rtf"] and 0 < figures["worst_block_ratio"]
    assert figures["worst_block_ms"] >= figures["stream_rtf"] * figures["block_ms"]

    client = MlflowClient(isolated_mlflow)
    run = client.create_run(client.create_experiment("realtime"))
    stats = measure_model(folder, RealtimeSettings(seconds=0.5, block_hops=2))
    logged = log_realtime(run.info.run_id, stats, block_hops=2)
    data = client.get_run(run.info.run_id).data
    assert data.metrics["stream_rtf"] == pytest.approx(logged["stream_rtf"])
    assert data.metrics["latency_ms"] == pytest.approx(40.0)
    assert "worst_block_ratio" in data.metrics
    assert data.tags["realtime_block_hops"] == "2"


def test_nan_and_inf_input_are_zeroed_and_never_poison_the_stream(tmp_path: Path):
    rate, nfft, nhop = 16000, 512, 128
    models = random_models(rate, nfft, 2, 8000, ("vocals",))
    folder = save_folder(tmp_path / "model", models, rate, nfft, nhop)
    audio = noise(2, 8000)
    hostile = audio.clone()
    hostile[:, 1000:1010] = float("nan")  # 10 NaN samples per channel
    hostile[0, 3000] = float("inf")
    zeroed = torch.nan_to_num(hostile, nan=0.0, posinf=0.0)
    raw = ["stream", "--raw", "--model", str(folder), "--rate", str(rate), "--channels", "2"]
    raw += ["--precision", "float32"]
    result = CliRunner().invoke(cli, raw, input=hostile.numpy().T.astype("<f4").tobytes())
    assert result.exit_code == 0, result.stderr
    out = np.frombuffer(result.stdout_bytes, dtype="<f4").reshape(-1, 2).T
    assert np.isfinite(out).all()
    expected = StreamingSeparator(models, rate, nfft, nhop, 2).offline(zeroed)[0].numpy()
    # as if the bad samples were silence (and clipped to full scale)
    assert np.abs(out - np.clip(expected, -1, 1)).max() <= 1e-4

    separator = StreamingSeparator(models, rate, nfft, nhop, 2)
    list(separator.stream(torch.split(hostile, separator.block_size, -1)))
    assert separator.zeroed_samples == 21
    assert all(torch.isfinite(t).all() for layer in separator._state for t in layer)


def test_a_file_with_nan_samples_is_refused(tmp_path: Path):
    rate, nfft, nhop = 16000, 512, 128
    folder = save_folder(tmp_path / "model", random_models(rate, nfft, 2, 8000), rate, nfft, nhop)
    audio = noise(2, 8000).numpy().T.copy()
    audio[4000, 1] = np.nan
    song = tmp_path / "song.wav"
    sf.write(song, audio, rate, subtype="FLOAT")
    result = CliRunner().invoke(cli, ["stream", str(song), "--model", str(folder), "--out", "o"])
    assert isinstance(result.exception, UnmixlabError)
    assert "nan at sample 4000, 0.250 s" in str(result.exception)
    assert not (tmp_path / "o").exists()
