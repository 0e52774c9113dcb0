"""The trainer: learning, determinism, resume, model files, early stopping, divergence."""

import json
from pathlib import Path

import pytest
import torch
from tiny import tiny_config

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.model_io import load_target_model, read_separator_json
from unmixlab.separator import load_separator
from unmixlab.trainer import (
    EpochRecord,
    Trainer,
    TrainingCallback,
    TrainResult,
    load_checkpoint,
    resume_config,
    train,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train faster on one thread, and do not stall when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decoded cache for the module (decoding goes through ffmpeg and takes seconds)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def config(tiny_config: TrainConfig, shared_cache: Path) -> TrainConfig:
    return tiny_config.updated(cache_dir=shared_cache)


@pytest.fixture(scope="module")
def straight(synth_root: Path, shared_cache: Path, tmp_path_factory) -> TrainResult:
    """Three uninterrupted epochs of the tiny configuration."""
    output = tmp_path_factory.mktemp("straight") / "model"
    return train(tiny(synth_root, shared_cache, output, epochs=3))


def tiny(synth_root: Path, cache: Path, output: Path, **changes) -> TrainConfig:
    """``tiny_config`` (see conftest) for module-scoped runs."""
    return tiny_config(synth_root, output, cache, **changes)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def curves(result: TrainResult) -> tuple[list[float], list[float], list[float]]:
    return result.history.train_loss, result.history.valid_loss, result.history.lr


def test_loss_falls(config: TrainConfig) -> None:
    result = train(config.updated(epochs=6, lr=1e-2))
    history = result.history
    assert result.epochs_trained == 6 and not result.stopped_early
    assert history.train_loss[-1] < 0.6 * history.train_loss[0]
    assert result.best_loss == min(history.valid_loss) < history.valid_loss[0]
    assert history.best_epoch == history.valid_loss.index(result.best_loss) + 1


@pytest.mark.slow
def test_same_seed_same_run_other_seed_other_run(config: TrainConfig, tmp_path: Path) -> None:
    first = train(config)
    again = train(config.updated(output=tmp_path / "again"))
    assert curves(first) == curves(again)
    assert_same_weights(weights(first.output / "vocals.pth"), weights(again.output / "vocals.pth"))
    other = train(config.updated(seed=1, output=tmp_path / "other"))
    assert other.history.train_loss != first.history.train_loss
    # data-loader processes draw the same chunks as the main process
    workers = train(config.updated(nb_workers=2, output=tmp_path / "workers"))
    assert curves(workers) == curves(first)


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(
    straight: TrainResult, synth_root: Path, shared_cache: Path, tmp_path: Path
) -> None:
    interrupted = tiny(synth_root, shared_cache, tmp_path / "model", epochs=2)
    first = train(interrupted)
    assert first.epochs_trained == 2
    resumed = train(interrupted.updated(epochs=3), resume=True)
    assert resumed.epochs_trained == 3
    assert curves(resumed) == curves(straight)
    assert resumed.history.best_epoch == straight.history.best_epoch
    assert_same_weights(
        weights(resumed.output / "vocals.pth"), weights(straight.output / "vocals.pth")
    )
    ours = torch.load(resumed.output / "vocals.chkpnt", weights_only=True)
    theirs = torch.load(straight.output / "vocals.chkpnt", weights_only=True)
    assert_same_weights(ours["state_dict"], theirs["state_dict"])
    assert ours["optimizer"]["state"][0]["step"] == theirs["optimizer"]["state"][0]["step"]


def test_resume_refuses_other_settings_and_a_missing_checkpoint(
    straight: TrainResult, config: TrainConfig, tmp_path: Path
) -> None:
    with pytest.raises(UnmixlabError, match="no checkpoint") as error:
        train(config.updated(output=tmp_path / "empty"), resume=True)
    assert "vocals.chkpnt" in str(error.value)
    changed = config.updated(output=straight.output, hidden_size=32, lr=0.1)
    with pytest.raises(UnmixlabError, match=r"other settings \(hidden_size, lr\)") as error:
        train(changed, resume=True)
    assert str(straight.output / "vocals.chkpnt") in str(error.value)


def test_resume_takes_the_checkpoints_settings_and_changes_the_run_group(
    straight: TrainResult, tmp_path: Path
) -> None:
    resumed = resume_config({"output": straight.output, "epochs": 9, "patience": 3})
    trained = json.loads((straight.output / "vocals.json").read_text())["args"]
    for group in ("data", "model", "optim"):
        for key, value in getattr(resumed, group).model_dump(mode="json").items():
            assert value == trained[key], key
    assert (resumed.run.epochs, resumed.run.patience) == (9, 3)
    with pytest.raises(UnmixlabError, match=r"other settings \(hidden_size\)"):
        load_checkpoint(resume_config({"output": straight.output, "hidden_size": 32}))
    with pytest.raises(UnmixlabError, match="no checkpoint"):
        resume_config({"output": tmp_path})


def test_default_bandwidth_follows_the_sample_rate() -> None:
    assert TrainConfig().model.bandwidth == 16000  # the reference's, at 44.1 kHz
    assert TrainConfig(sample_rate=16000).model.bandwidth == 8000
    assert TrainConfig(sample_rate=16000).updated(sample_rate=44100).model.bandwidth == 16000
    assert TrainConfig(bandwidth=5000).updated(sample_rate=16000).model.bandwidth == 5000
    with pytest.raises(ValueError, match="exceeds the Nyquist frequency"):
        TrainConfig(sample_rate=16000, bandwidth=16000)  # an explicit crop is kept


def test_model_folder_contents(straight: TrainResult) -> None:
    folder = straight.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "separator.json",
        "vocals.chkpnt",
        "vocals.json",
        "vocals.pth",
    ]  # no temporary files left
    assert read_separator_json(folder) == {
        "targets": ["vocals"],
        "sample_rate": 16000,
        "nfft": 512,
        "nhop": 128,
        "nb_channels": 2,
    }
    meta = json.loads((folder / "vocals.json").read_text())
    history = straight.history
    assert meta["args"]["hidden_size"] == 16 and meta["args"]["nfft"] == 512
    assert meta["args"]["nb_channels"] == 2 and meta["args"]["target"] == "vocals"
    assert meta["model"] == {
        "nb_bins": 257,
        "nb_channels": 2,
        "hidden_size": 16,
        "nb_layers": 3,
        "unidirectional": False,
        "max_bin": 257,
    }
    assert meta["train_loss_history"] == history.train_loss
    assert meta["valid_loss_history"] == history.valid_loss
    assert meta["lr_history"] == history.lr
    assert meta["best_loss"] == history.best_loss and meta["best_epoch"] == history.best_epoch
    assert meta["epochs_trained"] == 3 == straight.epochs_trained
    assert meta["training_seconds"] == pytest.approx(straight.training_seconds)
    assert straight.training_seconds > 0

    checkpoint = torch.load(folder / "vocals.chkpnt", weights_only=True)
    assert checkpoint["epoch"] == 3
    assert checkpoint["history"]["valid_loss"] == history.valid_loss
    assert checkpoint["config"]["seed"] == 0
    assert {"state_dict", "optimizer", "scheduler", "rng"} <= checkpoint.keys()
    best = weights(folder / "vocals.pth")
    last_is_best = history.best_epoch == 3
    assert all(torch.equal(best[k], checkpoint["state_dict"][k]) for k in best) == last_is_best
    # input statistics are stored as the reference does: negated mean and inverse std
    assert best["input_mean"].shape == (257,) and (best["input_mean"] <= 0).all()
    model = load_target_model(folder, "vocals")
    assert not model.training and model.config.hidden_size == 16


def test_trained_model_loads_in_the_reference_package(straight: TrainResult) -> None:
    reference = pytest.importorskip("openunmix.model")
    meta = json.loads((straight.output / "vocals.json").read_text())["args"]
    state = weights(straight.output / "vocals.pth")
    theirs = reference.OpenUnmix(
        nb_bins=meta["nfft"] // 2 + 1,
        nb_channels=meta["nb_channels"],
        hidden_size=meta["hidden_size"],
        nb_layers=meta["nb_layers"],
        max_bin=state["input_mean"].shape[0],
    )
    theirs.load_state_dict(state, strict=True)
    theirs.eval()
    ours = load_target_model(straight.output, "vocals")
    mag = torch.rand(1, 2, 257, 30)
    with torch.no_grad():
        torch.testing.assert_close(theirs(mag), ours(mag))


def test_early_stopping(config: TrainConfig) -> None:
    # a learning rate this small cannot improve: only batch-norm statistics move the loss
    result = train(config.updated(epochs=30, lr=1e-12, patience=2))
    history = result.history
    assert result.stopped_early
    assert 3 <= result.epochs_trained < 30
    assert history.bad_epochs == 2
    assert history.best_epoch == result.epochs_trained - 2
    assert min(history.valid_loss[-2:]) >= history.best_loss


class Recorder(TrainingCallback):
    def __init__(self):
        self.events: list[object] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.events.append(("start", trainer.model is not None))

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        self.events.append(record)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.events.append(("end", result.epochs_trained))


def test_callbacks_see_every_epoch(config: TrainConfig) -> None:
    recorder = Recorder()
    result = train(config, callbacks=[recorder])
    start, first, second, end = recorder.events
    assert start == ("start", True) and end == ("end", 2)
    assert [first.epoch, second.epoch] == [1, 2]
    assert [first.train_loss, second.train_loss] == result.history.train_loss
    assert [first.valid_loss, second.valid_loss] == result.history.valid_loss
    assert first.is_best and first.lr == config.optim.lr
    assert second.is_best == (second.valid_loss < first.valid_loss)
    assert first.epoch_seconds > 0 and first.samples_per_second > 0


class BlowUp(TrainingCallback):
    """Makes the weights infinite after the first epoch's checkpoint is written."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        with torch.no_grad():
            trainer.model.fc1.weight.fill_(float("inf"))


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(config: TrainConfig) -> None:
    with pytest.raises(UnmixlabError, match=r"loss became nan in epoch 2") as error:
        train(config.updated(epochs=3), callbacks=[BlowUp()])
    checkpoint = config.run.output / "vocals.chkpnt"
    assert str(checkpoint) in str(error.value)
    assert "epoch 1) is kept" in str(error.value)
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values())
    model = load_target_model(config.run.output, "vocals")  # the best model of epoch 1
    assert torch.isfinite(model(torch.rand(1, 2, 257, 5))).all()
    assert not list(config.run.output.glob(".*"))  # no temporary files


def test_huge_learning_rate_stops_with_a_clear_error(config: TrainConfig) -> None:
    with pytest.raises(UnmixlabError, match=r"loss became (nan|inf) in epoch 1") as error:
        train(config.updated(lr=1e30))
    assert str(config.run.output) in str(error.value)
    assert "nothing was saved" in str(error.value)
    assert not config.run.output.exists()  # no model folder left behind, not even empty


def test_separator_on_a_trained_model(straight: TrainResult, synth_root: Path) -> None:
    from unmixlab.audio import read_audio

    mixture, rate = read_audio(next((synth_root / "test").iterdir()) / "mixture.wav")
    plain = load_separator(straight.output, niter=0).separate(mixture, rate, progress=False)
    assert list(plain) == ["vocals"] and plain["vocals"].shape == mixture.shape
    # a single source is not Wiener-filtered: EM would hand it the whole mixture
    filtered = load_separator(straight.output, niter=1).separate(mixture, rate, progress=False)
    torch.testing.assert_close(filtered["vocals"], plain["vocals"])
    assert not torch.allclose(filtered["vocals"], mixture, atol=1e-3)

    both = load_separator(straight.output, niter=0, residual=True)
    estimates = both.separate(mixture, rate, progress=False)
    assert list(estimates) == ["vocals", "residual"]
    torch.testing.assert_close(
        estimates["vocals"] + estimates["residual"], mixture, atol=1e-4, rtol=0
    )
    filtered = load_separator(straight.output, niter=2, residual=True)
    estimates = filtered.separate(mixture, rate, progress=False)
    torch.testing.assert_close(
        estimates["vocals"] + estimates["residual"], mixture, atol=1e-3, rtol=0
    )

    # segments are stitched in place: with context over the whole song, as one pass
    one_pass = load_separator(straight.output, niter=0)
    segmented = load_separator(straight.output, niter=0)
    segmented.segment, segmented.context = 7 * rate // 10, 4 * rate
    torch.testing.assert_close(
        segmented.separate(mixture, rate, progress=False)["vocals"], one_pass(mixture)[0]
    )
    # another rate and mono input are converted on the way in and out
    mono = mixture.mean(0, keepdim=True)
    out = one_pass.separate(mono[:, ::2], rate // 2, progress=False)
    assert out["vocals"].shape == (2, mono.shape[1] // 2)
