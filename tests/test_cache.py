"""The decoded cache: same samples as decoding, rebuilt on change, atomic, read not held."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from pipelines.cli import cli
from unmixlab.config import STEMS
from unmixlab.data.cache import DecodedCache, build_cache, fingerprint, open_cache
from unmixlab.data.datasets import CachedReader, DecodingReader, TrainingChunks, WholeTracks
from unmixlab.data.tracks import discover
from unmixlab.errors import UnmixlabError

SR = 16000  # the rate of the synthetic fixture


@pytest.fixture(scope="module")
def cache(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> DecodedCache:
    """The stereo cache of the fixture's training tracks at their native rate (read-only)."""
    return build_cache(discover(synth_root, True, "train"), tmp_path_factory.mktemp("cache"), SR, 2)


def items(dataset: TrainingChunks, epochs: int = 2, count: int = 2) -> list[torch.Tensor]:
    """Mixtures and targets of the first ``count`` items of each epoch."""
    out = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for index in range(count):
            out.extend(dataset[index])
    return out


def assert_same_items(cached, decoding, tracks, seq_dur: float = 1.0, epochs: int = 2) -> None:
    """Both readers give identical training chunks (random mix, gain, swap) for one seed."""
    args = dict(target="vocals", seq_dur=seq_dur, samples_per_track=4, seed=5)
    a = TrainingChunks(cached, tracks, random_track_mix=True, augment=True, **args)
    b = TrainingChunks(decoding, tracks, random_track_mix=True, augment=True, **args)
    for x, y in zip(items(a, epochs), items(b, epochs), strict=True):
        assert x.dtype == y.dtype == torch.float32
        assert torch.equal(x, y)


def copy_root(synth_root: Path, dest: Path, count: int) -> Path:
    """A private HQ root with the first ``count`` training tracks of the fixture."""
    for track in sorted((synth_root / "train").iterdir())[:count]:
        shutil.copytree(track, dest / "train" / track.name)
    return dest


def test_cache_gives_the_decoded_samples_of_wav(synth_root: Path, cache: DecodedCache) -> None:
    tracks = discover(synth_root, True, "train")
    assert cache.build_seconds is not None
    cached, decoding = CachedReader(cache), DecodingReader(tracks, SR, 2)
    assert_same_items(cached, decoding, tracks)
    # the right audio, not just the same: a chunk is the file's samples
    track = tracks[1]
    truth, _ = sf.read(track.path / "drums.wav", dtype="float32", start=777, frames=5000)
    assert torch.equal(cached.chunk(track, "drums", 777, 5000), torch.from_numpy(truth.T))
    assert cache.load(track, "drums").dtype == np.int16  # lossless at the native rate
    # validation items (whole tracks) too
    whole = WholeTracks(cached, tracks, "bass")[0], WholeTracks(decoding, tracks, "bass")[0]
    for x, y in zip(*whole, strict=True):
        assert torch.equal(x, y)


def test_cache_at_another_rate_keeps_floats_and_lengths(synth_root: Path, tmp_path: Path) -> None:
    tracks = discover(synth_root, True, "train")[:2]
    cache = build_cache(tracks, tmp_path / "cache", 8000, 1)
    cached, decoding = CachedReader(cache), DecodingReader(tracks, 8000, 1)
    track = tracks[0]
    assert cache.load(track, "vocals").dtype == np.float32  # resampled: not int16-exact
    assert cached.length(track) == decoding.length(track) == 4 * 8000
    whole = cached.chunk(track, "vocals", 0, cached.length(track))
    assert torch.equal(whole, decoding.chunk(track, "vocals", 0, decoding.length(track)))
    tail = cached.chunk(track, "vocals", 4 * 8000 - 10, 100)
    assert torch.equal(tail[:, :10], whole[:, -10:]) and not tail[:, 10:].any()  # zero-padded


def write_stems_root(synth_root: Path, dest: Path, count: int) -> Path:
    """A MUSDB18 (``.stem.mp4``, AAC) root made from the fixture's first ``count`` tracks."""
    import stempeg

    (dest / "train").mkdir(parents=True)
    for folder in sorted((synth_root / "train").iterdir())[:count]:
        stems = np.stack([sf.read(folder / f"{s}.wav", dtype="float32")[0] for s in STEMS])
        stempeg.write_stems(
            str(dest / "train" / f"{folder.name}.stem.mp4"),
            stems[:, : 2 * SR],  # (stems, samples, channels), 2 s
            sample_rate=SR,
            writer=stempeg.StreamsWriter(codec="aac", bitrate=96000),
        )
    return dest


@pytest.mark.slow
def test_cache_gives_the_decoded_samples_of_stems_mp4(synth_root: Path, tmp_path: Path) -> None:
    root = write_stems_root(synth_root, tmp_path / "stems", 1)
    tracks = discover(root, False, "train")
    cache = build_cache(tracks, tmp_path / "cache", SR, 2)
    # AAC is lossy: compare with musdb decoding the same file, sample for sample
    decoding = DecodingReader(tracks, SR, 2)
    assert_same_items(CachedReader(cache), decoding, tracks, seq_dur=0.5, epochs=1)


def test_loader_workers_give_the_same_batches(synth_root: Path, cache: DecodedCache) -> None:
    tracks = discover(synth_root, True, "train")
    dataset = TrainingChunks(
        CachedReader(cache), tracks, "vocals", 1.0, 4, seed=1, random_track_mix=True
    )

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset, batch_size=4, shuffle=True, num_workers=workers,
            generator=torch.Generator().manual_seed(3),
        )  # fmt: skip
        return [tensor for batch in loader for tensor in batch]

    for x, y in zip(batches(0), batches(2), strict=True):
        assert torch.equal(x, y)


def test_reading_holds_no_mapping(synth_root: Path, cache: DecodedCache) -> None:
    tracks = discover(synth_root, True, "train")
    reader = CachedReader(cache)
    for track in tracks:
        for stem in STEMS:
            reader.chunk(track, stem, 100, SR)
    maps = Path(f"/proc/{os.getpid()}/maps")
    if maps.exists():
        assert str(cache.folder) not in maps.read_text()


def test_changed_source_builds_a_new_cache_and_prunes_the_old(
    synth_root: Path, tmp_path: Path
) -> None:
    root = copy_root(synth_root, tmp_path / "musdb", 2)
    cache_dir = tmp_path / "cache"
    tracks = discover(root, True, "train")
    old = build_cache(tracks, cache_dir, SR, 2)
    other_rate = build_cache(tracks, cache_dir, 8000, 2)
    assert build_cache(tracks, cache_dir, SR, 2).build_seconds is None  # reused, not rebuilt
    # rewrite one stem (quieter): its size and mtime change
    path = tracks[0].path / "bass.wav"
    audio, rate = sf.read(path, dtype="int16")
    quieter = audio // 2
    sf.write(path, quieter, rate, subtype="PCM_16")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = discover(root, True, "train")
    new = build_cache(changed, cache_dir, SR, 2)
    assert new.folder != old.folder and new.folder.name == fingerprint(changed, SR, 2)
    assert not old.folder.exists()  # superseded: pruned
    assert open_cache(other_rate.folder) is not None  # another rate: kept
    expected = torch.from_numpy(quieter[:1000].T.astype(np.float32) / 2**15)
    assert torch.equal(CachedReader(new).chunk(changed[0], "bass", 0, 1000), expected)
    # touching alone is a change too
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert fingerprint(discover(root, True, "train"), SR, 2) != new.folder.name


BUILD_SLOWLY = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from unmixlab.data import cache, tracks

    decode_wav = tracks.decode_wav
    def slow(*args, **kwargs):  # the real reader, paced so that a kill lands mid-build
        time.sleep(0.2)
        return decode_wav(*args, **kwargs)
    tracks.decode_wav = slow
    cache.build_cache(
        tracks.discover(Path(sys.argv[1]), True, "train"), Path(sys.argv[2]), 16000, 2
    )
    """
)


@pytest.mark.slow
def test_killed_build_leaves_nothing_usable(synth_root: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", BUILD_SLOWLY, str(synth_root), str(cache_dir)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(cache_dir.glob(".*.tmp-*/train/*/*.npy")):  # some stems written
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    leftovers = list(cache_dir.iterdir())
    assert any(".tmp-" in p.name for p in leftovers)
    assert all(open_cache(p) is None for p in leftovers if p.is_dir())
    tracks = discover(synth_root, True, "train")
    assert open_cache(cache_dir / fingerprint(tracks, SR, 2)) is None
    cache = build_cache(tracks, cache_dir, SR, 2)  # the next build succeeds and cleans up
    assert [p.name for p in cache_dir.iterdir() if p.is_dir()] == [cache.folder.name]


def test_failed_decode_leaves_nothing(synth_root: Path, tmp_path: Path) -> None:
    root = copy_root(synth_root, tmp_path / "musdb", 3)
    tracks = discover(root, True, "train")
    broken = tracks[-1].path / "other.wav"
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])  # truncated
    cache_dir = tmp_path / "cache"
    with pytest.raises(UnmixlabError) as error:
        build_cache(tracks, cache_dir, SR, 2)
    assert error.value.path == broken
    assert [p.name for p in cache_dir.iterdir()] == [".build.lock"]


def test_open_cache_refuses_incomplete_folders(synth_root: Path, tmp_path: Path) -> None:
    tracks = discover(synth_root, True, "train")[:1]
    cache = build_cache(tracks, tmp_path / "cache", SR, 2)
    renamed = cache.folder.with_name(f".{cache.folder.name}.tmp-x")  # as if caught mid-rename
    shutil.copytree(cache.folder, renamed)
    assert open_cache(renamed) is None
    (cache.folder / "train" / tracks[0].name / "vocals.npy").unlink()
    assert open_cache(cache.folder) is None
    rebuilt = build_cache(tracks, tmp_path / "cache", SR, 2)  # a damaged cache is rebuilt
    assert rebuilt.build_seconds is not None and open_cache(rebuilt.folder) is not None
    assert not renamed.exists()  # stale temporary folders are removed by the next build


def test_prepare_command(synth_root: Path, tmp_path: Path) -> None:
    args = ["prepare", "--root", str(synth_root), "--is-wav", "--sample-rate", "8000"]
    args += ["--cache-dir", str(tmp_path / "cache")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    tracks = discover(synth_root, True, "train")
    key = fingerprint(tracks, 8000, 2)
    assert f"fingerprint: {key}" in first.output
    assert str(tmp_path / "cache" / key) in first.output and "decoded in" in first.output
    assert f"validation: {tracks[-1].name}" in first.output
    second = CliRunner().invoke(cli, args)
    assert "reused the existing cache" in second.output
