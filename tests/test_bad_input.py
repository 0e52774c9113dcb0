"""Bad input stops with one UnmixlabError naming the offending path, and leaves nothing behind."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmixlab.audio import read_audio
from unmixlab.config import TrainConfig
from unmixlab.data.cache import build_cache
from unmixlab.data.tracks import discover
from unmixlab.errors import UnmixlabError
from unmixlab.model import OpenUnmix
from unmixlab.model_io import save_torch, write_json, write_separator_json
from unmixlab.prepare import prepare
from unmixlab.separator import load_separator


@pytest.fixture
def root(synth_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of two training tracks of the synthetic set."""
    copy = tmp_path / "musdb"
    for track in sorted((synth_root / "train").iterdir())[:2]:
        shutil.copytree(track, copy / "train" / track.name)
    return copy


def first_track(root: Path) -> Path:
    return sorted((root / "train").iterdir())[0]


def config(root: Path, **changes) -> TrainConfig:
    settings = dict(
        root=root,
        is_wav=True,
        sample_rate=16000,
        nfft=512,
        nhop=128,
        bandwidth=8000,
        cache_dir=root.parent / "cache",
    )
    return TrainConfig(**{**settings, **changes})


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not audio\x00\xff" * 200)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rewrite(path: Path, change: Callable[[np.ndarray, int], tuple[np.ndarray, int]]) -> None:
    audio, rate = sf.read(path, dtype="int16")
    audio, rate = change(audio, rate)
    sf.write(path, audio, rate, subtype="PCM_16")


def expect_error(root: Path, offending: Path, match: str, **changes) -> None:
    """``prepare_data`` refuses ``root`` naming ``offending``, and writes no cache."""
    with pytest.raises(UnmixlabError, match=match) as error:
        prepare(config(root, **changes).data)
    assert str(offending) in str(error.value)
    assert error.value.path == offending
    assert error.value.fix  # says what to do
    assert not (root.parent / "cache").exists()
    assert not list(root.rglob(".*"))  # no hidden temporary folders in the data root


@pytest.mark.parametrize("stem", ["vocals", "mixture"])
def test_unreadable_audio(root: Path, stem: str) -> None:
    path = first_track(root) / f"{stem}.wav"
    garbage(path)
    expect_error(root, path, "cannot read audio")


@pytest.mark.parametrize("stem", ["bass", "mixture"])
def test_truncated_audio(root: Path, stem: str) -> None:
    path = first_track(root) / f"{stem}.wav"
    truncate(path)
    expect_error(root, path, "is truncated")


def test_missing_stem(root: Path) -> None:
    path = first_track(root) / "other.wav"
    path.unlink()
    expect_error(root, path, "missing stem 'other.wav'")


@pytest.mark.parametrize("stem", ["drums", "mixture"])
def test_stems_of_different_lengths(root: Path, stem: str) -> None:
    path = first_track(root) / f"{stem}.wav"
    rewrite(path, lambda audio, rate: (audio[:-100], rate))
    expect_error(root, path, "has 63900 samples, the other stems have 64000")


def test_stems_of_different_sample_rates(root: Path) -> None:
    path = first_track(root) / "vocals.wav"
    rewrite(path, lambda audio, rate: (audio, 22050))
    expect_error(root, path, "sample rate 22050 Hz differs from the other stems' 16000 Hz")


def test_stems_of_different_channel_counts(root: Path) -> None:
    path = first_track(root) / "bass.wav"
    rewrite(path, lambda audio, rate: (audio[:, 0], rate))
    expect_error(root, path, "has 1 channels, the other stems have 2")


def test_mono_tracks_for_a_stereo_model(root: Path) -> None:
    track = first_track(root)
    for path in track.glob("*.wav"):
        rewrite(path, lambda audio, rate: (audio[:, 0], rate))
    expect_error(root, track, "is mono, but the model expects stereo", nb_channels=2)
    mono = prepare(config(root, nb_channels=1).data).load()  # fine for a mono model
    assert len(mono.train) == 1
    for track in (*mono.train, *mono.valid):
        assert mono.reader.chunk(track, "vocals", 0, 100).shape == (1, 100)


def test_failed_cache_build_leaves_no_partial_cache(root: Path, tmp_path: Path) -> None:
    track = first_track(root)
    for path in track.glob("*.wav"):
        rewrite(path, lambda audio, rate: (audio[:, 0], rate))
    tracks = discover(root, True, "train")
    with pytest.raises(UnmixlabError, match="is mono"):
        build_cache(tracks[::-1], tmp_path / "cache", 16000, 2)  # fails on the second track
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # no partial cache


def test_missing_root(tmp_path: Path) -> None:
    expect_error(tmp_path / "nowhere", tmp_path / "nowhere", "data root does not exist")


def test_no_root() -> None:
    with pytest.raises(UnmixlabError, match="no data root given"):
        prepare(TrainConfig().data)


def test_empty_root(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(empty, empty, "no 'train' folder in the data root")


def test_root_without_train_folder(root: Path) -> None:
    (root / "train").rename(root / "test")
    expect_error(root, root, "no 'train' folder in the data root")


def test_train_folder_without_tracks(root: Path) -> None:
    shutil.rmtree(root / "train")
    (root / "train").mkdir()
    expect_error(root, root / "train", "no tracks found")


def test_wav_folders_without_is_wav(root: Path) -> None:
    expect_error(root, root / "train", "holds wav folders.*Add --is-wav", is_wav=False)


def test_stem_files_with_is_wav(tmp_path: Path) -> None:
    stems = tmp_path / "musdb"
    (stems / "train").mkdir(parents=True)
    (stems / "train" / "A - Song.stem.mp4").write_bytes(b"\x00" * 100)
    expect_error(stems, stems / "train", "holds .stem.mp4 files.*Drop --is-wav")


def test_unreadable_and_truncated_songs(root: Path) -> None:
    song = first_track(root) / "mixture.wav"
    audio, rate = read_audio(song)
    assert audio.shape == (2, 64000) and rate == 16000
    truncate(song)
    with pytest.raises(UnmixlabError, match="is truncated") as error:
        read_audio(song)
    assert error.value.path == song
    garbage(song)
    with pytest.raises(UnmixlabError, match="cannot read audio") as error:
        read_audio(song)
    assert error.value.path == song
    with pytest.raises(UnmixlabError, match="not found"):
        read_audio(root / "missing.wav")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model folder as ``unmixlab train`` writes it (untrained weights)."""
    folder = tmp_path / "model"
    folder.mkdir()
    train = TrainConfig(
        nfft=512,
        nhop=128,
        hidden_size=8,
        nb_layers=1,
        sample_rate=16000,
        bandwidth=8000,
        output=folder,
    )
    save_torch(OpenUnmix(train.architecture()).state_dict(), folder / "vocals.pth")
    write_json(
        folder / "vocals.json",
        {"args": train.flat(), "model": train.architecture().model_dump()},
    )
    write_separator_json(folder, 16000, 512, 128, 2)
    return folder


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_model_folder_loads(model_dir: Path) -> None:
    separator = load_separator(model_dir)
    assert separator.targets == ["vocals"]


@pytest.mark.parametrize("hidden_size", [16, 9])
def test_model_of_another_architecture(model_dir: Path, hidden_size: int) -> None:
    def change(meta: dict) -> None:
        meta["args"]["hidden_size"] = meta["model"]["hidden_size"] = hidden_size

    edit_json(model_dir / "vocals.json", change)
    with pytest.raises(UnmixlabError) as error:
        load_separator(model_dir)
    # 16: the weights do not fit; 9: no bidirectional model has that size
    offending = model_dir / ("vocals.pth" if hidden_size == 16 else "vocals.json")
    assert error.value.path == offending
    assert str(offending) in str(error.value)


def test_reference_style_json_of_another_architecture(model_dir: Path) -> None:
    def change(meta: dict) -> None:
        del meta["model"]
        meta["args"]["hidden_size"] = 32

    edit_json(model_dir / "vocals.json", change)
    with pytest.raises(UnmixlabError, match="weights do not fit") as error:
        load_separator(model_dir)
    assert error.value.path == model_dir / "vocals.pth"


def test_damaged_model_files(model_dir: Path) -> None:
    garbage(model_dir / "vocals.pth")
    with pytest.raises(UnmixlabError, match="cannot load the weights") as error:
        load_separator(model_dir)
    assert error.value.path == model_dir / "vocals.pth"
    (model_dir / "vocals.json").write_text("{not json")
    with pytest.raises(UnmixlabError, match="invalid JSON") as error:
        load_separator(model_dir)
    assert error.value.path == model_dir / "vocals.json"


def test_missing_model_folder_and_files(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnmixlabError, match="model folder not found") as error:
        load_separator(tmp_path / "nowhere")
    assert error.value.path == tmp_path / "nowhere"
    with pytest.raises(UnmixlabError, match="no model for target 'drums'") as error:
        load_separator(model_dir, ["drums"])
    assert error.value.path == model_dir / "drums.pth"
    (model_dir / "separator.json").unlink()
    with pytest.raises(UnmixlabError, match="no separator.json") as error:
        load_separator(model_dir)
    assert error.value.path == model_dir


def test_model_of_another_channel_count_than_the_folder(model_dir: Path) -> None:
    edit_json(model_dir / "separator.json", lambda meta: meta.update(nb_channels=1))
    with pytest.raises(UnmixlabError, match="does not match separator.json") as error:
        load_separator(model_dir)
    assert error.value.path == model_dir / "vocals.pth"


def test_unmixlab_error_survives_pickling_across_processes():
    import pickle

    from unmixlab.errors import UnmixlabError

    error = pickle.loads(pickle.dumps(UnmixlabError("holds no samples", "Replace it", "/d/x.wav")))
    assert str(error) == "/d/x.wav: holds no samples. Replace it"
    assert error.fix == "Replace it" and str(error.path) == "/d/x.wav"


@pytest.mark.parametrize(
    ("bad", "name"),
    [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (3e38, "3e\\+38"), (-17.0, "-17")],
)
def test_absurd_samples_in_a_float_stem(root: Path, bad: float, name: str) -> None:
    path = first_track(root) / "vocals.wav"
    audio, rate = sf.read(path, dtype="float32")
    audio[rate // 2 + 3, 0] = bad  # 0.500 s in
    sf.write(path, audio, rate, subtype="FLOAT")
    expect_error(root, path, rf"{name} at sample {rate // 2 + 3}, 0\.500 s")


def test_separating_a_mixture_with_nan_is_refused(model_dir: Path, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    audio = np.zeros((16000, 2), dtype="float32")
    audio[8000:8010] = np.nan
    sf.write(song, audio, 16000, subtype="FLOAT")
    with pytest.raises(UnmixlabError, match=r"nan at sample 8000, 0\.500 s, and 19 more"):
        read_audio(song)
    separator = load_separator(model_dir)
    with pytest.raises(UnmixlabError, match="non-finite"):
        separator.separate(torch.from_numpy(audio.T.copy()), 16000)
