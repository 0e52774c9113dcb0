"""Data sets: discovery, the train/valid split, the decoded cache, training chunks, whole tracks."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor

from unmixlab.config import STEMS, TARGETS, TrainConfig
from unmixlab.data.cache import build_cache, fingerprint, open_cache
from unmixlab.data.datasets import DecodingReader, TrainingChunks, WholeTracks
from unmixlab.data.tracks import Track, discover, official_validation_tracks, split_train_valid
from unmixlab.errors import UnmixlabError
from unmixlab.prepare import LoadedData, prepare

SR = 16000
SEQ = 0.5  # seconds per training chunk
LENGTH = int(SEQ * SR)


class RecordingReader:
    """A real chunk reader that also remembers what was read: ``(track, stem, start)``."""

    def __init__(self, reader):
        self.reader = reader
        self.sample_rate = reader.sample_rate
        self.calls: list[tuple[str, str, int]] = []

    def length(self, track: Track) -> int:
        return self.reader.length(track)

    def chunk(self, track: Track, stem: str, start: int, length: int) -> Tensor:
        self.calls.append((track.name, stem, start))
        return self.reader.chunk(track, stem, start, length)


@pytest.fixture(scope="module")
def prepared(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedData:
    config = TrainConfig(
        root=synth_root,
        is_wav=True,
        sample_rate=SR,
        nfft=512,
        nhop=128,
        bandwidth=8000,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )
    return prepare(config.data).load()


def chunks(data: LoadedData, reader=None, **options) -> TrainingChunks:
    settings = {"seed": 0, "samples_per_track": 5, "random_track_mix": False, "augment": False}
    settings.update(options)
    return TrainingChunks(reader or data.reader, data.train, "vocals", SEQ, **settings)


def wav(track: Track, stem: str) -> np.ndarray:
    """``(nb_channels, nb_timesteps)`` float32 samples of a stem, read independently."""
    audio, _ = sf.read(track.path / f"{stem}.wav", dtype="float32", always_2d=True)
    return audio.T


def offsets_of(chunk: np.ndarray, stem: np.ndarray) -> list[int]:
    """Every start at which ``chunk`` (nb_channels, length) equals ``stem`` exactly."""
    head = np.lib.stride_tricks.sliding_window_view(stem[0], 64)[
        : stem.shape[1] - chunk.shape[1] + 1
    ]
    candidates = np.flatnonzero((head == chunk[0, :64]).all(1))
    return [int(s) for s in candidates if np.array_equal(stem[:, s : s + chunk.shape[1]], chunk)]


def test_split_and_lengths(prepared: LoadedData, synth_root: Path) -> None:
    names = sorted(p.name for p in (synth_root / "train").iterdir())
    assert [t.name for t in prepared.train] == names[:-1]
    assert [t.name for t in prepared.valid] == names[-1:]  # last track by name
    data = chunks(prepared, samples_per_track=7)
    assert len(data) == 3 * 7
    mixture, target = data[0]
    assert mixture.shape == target.shape == (2, LENGTH)
    assert mixture.dtype == target.dtype == torch.float32


def test_items_depend_on_seed_epoch_and_index_only(prepared: LoadedData) -> None:
    one, two = chunks(prepared, augment=True), chunks(prepared, augment=True)
    one.set_epoch(3), two.set_epoch(3)
    for index in (0, 6, 14):
        assert all(torch.equal(a, b) for a, b in zip(one[index], two[index], strict=True))
    assert torch.equal(one[6][0], one[6][0])  # reading twice changes nothing
    two.set_epoch(4)
    assert not torch.equal(one[6][0], two[6][0])
    other_seed = chunks(prepared, augment=True, seed=1)
    other_seed.set_epoch(3)
    assert not torch.equal(one[6][0], other_seed[6][0])
    assert not torch.equal(one[6][0], one[7][0])


def test_plain_chunks_are_excerpts_of_their_track(prepared: LoadedData) -> None:
    reader = RecordingReader(prepared.reader)
    data = chunks(prepared, reader)
    data.set_epoch(1)
    for index in (0, 7, 14):
        track = prepared.train[index // data.samples_per_track]
        reader.calls.clear()
        mixture, target = data[index]
        assert {name for name, _, _ in reader.calls} == {track.name}
        assert sorted(stem for _, stem, _ in reader.calls) == sorted(TARGETS)
        recorded = {stem: start for _, stem, start in reader.calls}
        total = np.zeros((2, LENGTH), dtype=np.float64)
        for stem in TARGETS:
            audio = wav(track, stem)
            found = offsets_of(target.numpy(), audio) if stem == "vocals" else [recorded[stem]]
            assert recorded[stem] in found, f"{stem}: chunk is not the track's audio at its start"
            total += audio[:, recorded[stem] : recorded[stem] + LENGTH]
        np.testing.assert_allclose(mixture.numpy(), total, atol=1e-6)
        # the stems of one item come from independent offsets, as in the reference data set
    starts = {start for _, _, start in reader.calls}
    assert len(starts) > 1


def test_augmentation_scales_and_swaps_stems(prepared: LoadedData) -> None:
    reader = RecordingReader(prepared.reader)
    data = chunks(prepared, reader, augment=True, samples_per_track=12)
    data.set_epoch(2)
    tracks = {track.name: track for track in prepared.train}
    gains, swapped = [], []
    for index in range(len(data)):
        reader.calls.clear()
        mixture, target = data[index]
        name, _, start = next(call for call in reader.calls if call[1] == "vocals")
        raw = prepared.reader.chunk(tracks[name], "vocals", start, LENGTH)
        if raw.abs().max() < 1e-3 or torch.equal(raw[0], raw[1]):
            continue  # silence or centred: neither gain nor swap is observable
        fits = []
        for flip in (False, True):
            reference = raw.flip(0) if flip else raw
            gain = float((target * reference).sum() / (reference * reference).sum())
            fits.append((float((target - gain * reference).abs().max()), gain, flip))
        error, gain, flip = min(fits)
        assert error < 1e-5, "the target is not a scaled (or swapped) stem"
        gains.append(gain)
        swapped.append(flip)
    assert len(gains) >= 20
    assert all(0.25 <= g <= 1.25 for g in gains)
    assert max(gains) - min(gains) > 0.3  # gains vary
    assert 0 < sum(swapped) < len(swapped)  # channel swap happens sometimes, not always


def test_random_track_mix_draws_stems_from_several_tracks(prepared: LoadedData) -> None:
    reader = RecordingReader(prepared.reader)
    data = chunks(prepared, reader, random_track_mix=True, samples_per_track=4)
    data.set_epoch(1)
    mixed_items = 0
    for index in range(len(data)):
        reader.calls.clear()
        data[index]
        mixed_items += len({name for name, _, _ in reader.calls}) > 1
    assert mixed_items > len(data) // 2
    assert {name for name, _, _ in reader.calls} <= {t.name for t in prepared.train}


def test_whole_tracks_are_complete(prepared: LoadedData) -> None:
    data = WholeTracks(prepared.reader, prepared.valid, "drums")
    assert len(data) == len(prepared.valid) == 1
    mixture, target = data[0]
    track = prepared.valid[0]
    assert mixture.shape == (2, track.nb_timesteps) == (2, 4 * SR)
    np.testing.assert_array_equal(mixture.numpy(), wav(track, "mixture"))
    np.testing.assert_array_equal(target.numpy(), wav(track, "drums"))


def test_decoding_reader_reads_what_the_cache_holds(prepared: LoadedData) -> None:
    track = prepared.train[1]
    decoding = DecodingReader(prepared.train, SR, 2)
    assert decoding.length(track) == prepared.reader.length(track)
    for stem, start in (("vocals", 1234), ("mixture", 4 * SR - 100)):
        expected = prepared.reader.chunk(track, stem, start, 1000)
        torch.testing.assert_close(decoding.chunk(track, stem, start, 1000), expected)
    assert expected[:, 100:].abs().max() == 0  # zero-padded past the end


def test_cache_is_reused_and_follows_its_sources(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "musdb"
    shutil.copytree(synth_root, root, ignore=shutil.ignore_patterns("test"))
    tracks = discover(root, True, "train")[:2]
    cache = build_cache(tracks, tmp_path / "cache", SR, 1)
    assert cache.folder.name == fingerprint(tracks, SR, 1)
    assert cache.load(tracks[0], "bass").shape == (1, 4 * SR)  # stereo averaged to mono
    stamp = (cache.folder / "index.json").stat().st_mtime_ns
    assert build_cache(tracks, tmp_path / "cache", SR, 1).folder == cache.folder
    assert (cache.folder / "index.json").stat().st_mtime_ns == stamp  # not rebuilt
    assert fingerprint(tracks, 8000, 1) != cache.folder.name
    # a changed source file makes a new fingerprint, hence a new cache
    path = tracks[0].path / "bass.wav"
    audio, rate = sf.read(path, dtype="int16")
    sf.write(path, audio // 2, rate)
    assert fingerprint(discover(root, True, "train")[:2], SR, 1) != cache.folder.name
    assert open_cache(tmp_path / "nowhere") is None


def make_root(tmp_path: Path, synth_root: Path, names: list[str]) -> Path:
    """A training folder whose tracks are copies of the synthetic ones under ``names``."""
    sources = sorted((synth_root / "train").iterdir())
    for index, name in enumerate(names):
        shutil.copytree(sources[index % len(sources)], tmp_path / "musdb" / "train" / name)
    return tmp_path / "musdb"


def test_validation_split_prefers_musdb_official_tracks(synth_root: Path, tmp_path: Path) -> None:
    official = official_validation_tracks()
    assert len(official) == 14
    names = ["A Song", official[3], "Zed - Last", official[0], "M - Middle"]
    tracks = discover(make_root(tmp_path, synth_root, names), True, "train")
    train, valid = split_train_valid(tracks)
    assert [t.name for t in valid] == sorted([official[0], official[3]])
    assert [t.name for t in train] == ["A Song", "M - Middle", "Zed - Last"]
    # given names win over the official list
    train, valid = split_train_valid(tracks, ("A Song",))
    assert [t.name for t in valid] == ["A Song"] and len(train) == 4


def test_validation_split_by_names_and_count(synth_root: Path, tmp_path: Path) -> None:
    tracks = discover(make_root(tmp_path, synth_root, ["a", "b", "c", "d"]), True, "train")
    assert [t.name for t in split_train_valid(tracks, valid_count=1)[1]] == ["d"]
    train, valid = split_train_valid(tracks, valid_count=3)
    assert [t.name for t in valid] == ["b", "c", "d"] and [t.name for t in train] == ["a"]
    train, valid = split_train_valid(tracks, ("b", "a"))
    assert [t.name for t in valid] == ["a", "b"] and [t.name for t in train] == ["c", "d"]
    with pytest.raises(UnmixlabError, match="not in the training set: x"):
        split_train_valid(tracks, ("a", "x"))
    with pytest.raises(UnmixlabError, match="all 4 training tracks"):
        split_train_valid(tracks, valid_count=4)
    with pytest.raises(UnmixlabError, match="all 4 training tracks"):
        split_train_valid(tracks, ("a", "b", "c", "d"))
    single = tracks[:1]
    with pytest.raises(UnmixlabError, match="all 1 training tracks"):
        split_train_valid(single)


def test_discover_describes_each_track(synth_root: Path) -> None:
    tracks = discover(synth_root, True, "test")
    assert len(tracks) == 2 and all(t.subset == "test" for t in tracks)
    track = tracks[0]
    assert (track.rate, track.nb_timesteps, track.nb_channels) == (SR, 4 * SR, 2)
    assert track.duration == 4.0
    assert [p.name for p in track.files()] == [f"{stem}.wav" for stem in STEMS]
