"""The decoded data cache: each track decoded once, read by random chunk without decoding.

Layout: ``CACHE_DIR/<fingerprint>/<subset>/<track>/<stem>.npy`` holding
``(nb_channels, nb_timesteps)`` at the experiment's sample rate, plus ``index.json``.
A stem is stored as int16 (the sample times 2**15) when that is lossless, which it is
whenever no resampling or down-mixing happened to a 16-bit source, else
as float32; :meth:`DecodedCache.chunk` always returns float32, bit-identical to decoding.

Identity: the fingerprint hashes the source files (path below the root, size, modification
time in ns), the sample rate, the channel count and the cache format, so touching or
rewriting a source file, or changing the rate or channels, selects a new folder.

Atomicity: a build holds ``CACHE_DIR/.build.lock`` (``flock``, released by the kernel if the
process dies), writes into a hidden ``.<fingerprint>.tmp-*`` folder, fsyncs each file,
writes ``index.json`` last and renames the folder into place. :func:`open_cache` accepts only
a folder whose name is the fingerprint its index records, with every stem present at the
recorded length, so an interrupted build is never used. The next build removes leftover
temporary folders, and after a build, caches of the same source folders, rate and channels
with another fingerprint (superseded: a source file changed) are pruned. Caches at other
rates or channel counts are kept. A chunk is read with ``pread`` into its tensor: loader
processes share the files through the page cache, and a training process holds no part of
the cache, however large the data set (``DecodedCache.load`` still memory-maps a stem).
"""

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from unmixlab.config import STEMS
from unmixlab.data.tracks import MusdbDecoder, Track
from unmixlab.errors import UnmixlabError
from unmixlab.progress import tqdm

FORMAT = 2  # bump when the layout or the stored values change
INDEX = "index.json"
LOCK = ".build.lock"
TMP_MARK = ".tmp-"
INT16_SCALE = 2.0**15


def fingerprint(tracks: list[Track], sample_rate: int, nb_channels: int) -> str:
    """A short hash of the source files' identity and the decoding settings."""
    digest = hashlib.sha256(f"format={FORMAT};rate={sample_rate};channels={nb_channels}".encode())
    for track in tracks:
        for path in track.files():
            stat = path.stat()
            digest.update(
                f"{track.subset}/{track.name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()
            )
    return digest.hexdigest()[:16]


def source_of(tracks: list[Track]) -> list[str]:
    """The source folders ``<root>/<subset>`` the tracks come from, resolved and sorted."""
    return sorted({str(track.path.parent.resolve()) for track in tracks})


@dataclass(frozen=True)
class DecodedCache:
    """A complete cache folder; stems are read per chunk, never held in memory."""

    folder: Path
    sample_rate: int
    nb_channels: int
    lengths: dict[str, int]  # "subset/track" -> nb_timesteps
    build_seconds: float | None = None  # set when this call built it, None when reused

    @property
    def fingerprint(self) -> str:
        """The fingerprint this cache was built for (its folder name)."""
        return self.folder.name

    def stem_path(self, track: Track, stem: str) -> Path:
        """The ``.npy`` file of one stem."""
        return self.folder / track.subset / track.name / f"{stem}.npy"

    def load(self, track: Track, stem: str) -> np.ndarray:
        """The stored ``(nb_channels, nb_timesteps)`` array of one stem, memory-mapped.

        Its dtype is int16 (samples times 2**15) or float32; :meth:`chunk` converts.
        """
        return np.load(self.stem_path(track, stem), mmap_mode="r")

    def chunk(self, track: Track, stem: str, start: int, length: int) -> Tensor:
        """Float32 ``(nb_channels, length)`` samples from ``start`` (zero-padded past the end).

        Each channel's span is read with one ``pread`` straight into the result (converted
        from int16 on the way): the page cache is shared by all loader processes, and no
        process keeps a mapping or a copy of the data set.
        """
        path = self.stem_path(track, stem)
        offset, dtype, (nb_channels, nb_timesteps) = _npy_layout(path)
        out = torch.empty(nb_channels, length)
        nb_read = max(0, min(length, nb_timesteps - start))
        view = out.numpy()
        buffer = view if dtype == np.float32 else np.empty((nb_channels, length), dtype)
        fd = os.open(path, os.O_RDONLY)
        try:
            for channel in range(nb_channels):
                row = buffer[channel, :nb_read]
                position = offset + (channel * nb_timesteps + start) * dtype.itemsize
                if os.preadv(fd, [row], position) != row.nbytes:
                    raise OSError(f"{path} is shorter than its header says")
        finally:
            os.close(fd)
        if buffer is not view:  # exact: int16 to float32, then a power-of-two scale
            out[:, :nb_read].copy_(torch.from_numpy(buffer[:, :nb_read])).mul_(1 / INT16_SCALE)
        out[:, nb_read:] = 0.0
        return out


@lru_cache(maxsize=65536)
def _npy_layout(path: Path) -> tuple[int, np.dtype, tuple[int, int]]:
    """``(data offset, dtype, shape)`` of a C-ordered ``.npy`` file (files never change)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
        if fortran_order or len(shape) != 2:
            raise ValueError(f"{path} is not a C-ordered 2-d array")
        return handle.tell(), dtype, shape


def open_cache(folder: Path) -> DecodedCache | None:
    """The cache in ``folder`` if it is complete and of the current format, else None."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or meta.get("fingerprint") != folder.name:
        return None  # an old format, or a temporary folder caught between index and rename
    for name, length in meta["lengths"].items():
        for stem in STEMS:
            try:
                shape = np.load(folder / name / f"{stem}.npy", mmap_mode="r").shape
            except (OSError, ValueError):
                return None
            if shape != (meta["nb_channels"], length):
                return None
    return DecodedCache(folder, meta["sample_rate"], meta["nb_channels"], meta["lengths"])


def build_cache(
    tracks: list[Track], cache_dir: Path, sample_rate: int, nb_channels: int
) -> DecodedCache:
    """Return the cache of ``tracks``, decoding them once if no complete cache matches.

    Each stem is decoded whole, as :class:`~unmixlab.data.tracks.MusdbDecoder` decodes it
    (wav with ``soundfile``, ``.stem.mp4`` with ffmpeg), resampled to ``sample_rate`` and
    mixed to ``nb_channels``, a few stems at a time.
    Concurrent builds in one ``cache_dir`` wait for each other.

    Raises:
        UnmixlabError: a stem cannot be decoded (nothing of the build is left behind).
    """
    cache_dir = Path(cache_dir)
    key = fingerprint(tracks, sample_rate, nb_channels)
    folder = cache_dir / key
    existing = open_cache(folder)
    if existing is not None:
        return existing
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _build_lock(cache_dir):
        existing = open_cache(folder)  # another process may have built it while we waited
        if existing is not None:
            return existing
        remove_stale(cache_dir)
        if folder.exists():  # unusable (old format, damaged): replaced below
            shutil.rmtree(folder)
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}{TMP_MARK}", dir=cache_dir))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is readable like its sources
        try:
            lengths = _decode_all(tracks, tmp, sample_rate, nb_channels)
            meta = {
                "format": FORMAT,
                "fingerprint": key,
                "sample_rate": sample_rate,
                "nb_channels": nb_channels,
                "source": source_of(tracks),
                "lengths": lengths,
            }
            with _synced(tmp / INDEX) as handle:  # written last: marks completeness
                handle.write(json.dumps(meta, indent=1).encode())
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        prune_superseded(cache_dir, folder)
    cache = open_cache(folder)
    return DecodedCache(
        cache.folder,
        cache.sample_rate,
        cache.nb_channels,
        cache.lengths,
        build_seconds=time.perf_counter() - start,
    )


def _decode_all(
    tracks: list[Track], out: Path, sample_rate: int, nb_channels: int
) -> dict[str, int]:
    """Decode every stem of ``tracks`` into ``out``; returns ``"subset/track" -> length``."""
    jobs = [(track, stem) for track in tracks for stem in STEMS]
    decoder = MusdbDecoder(tracks)  # wav through soundfile, .stem.mp4 through ffmpeg

    def decode_one(track: Track, stem: str) -> int:
        audio = decoder.decode(track, stem, sample_rate, nb_channels)
        expected = -(-track.nb_timesteps * sample_rate // track.rate)  # resampling rounds up
        if audio.shape[1] != expected:
            raise UnmixlabError(
                f"'{stem}' decoded to {audio.shape[1]} samples, expected {expected} "
                f"at {sample_rate} Hz",
                "The file is truncated, broken or was changed while preparing; replace it "
                "and run again",
                track.path / f"{stem}.wav" if track.is_wav else track.path,
            )
        _store(out / track.subset / track.name / f"{stem}.npy", audio.numpy())
        return expected

    for track in tracks:
        (out / track.subset / track.name).mkdir(parents=True)
    # ffmpeg decodes in subprocesses, soundfile and resampling release the GIL: threads overlap
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {pool.submit(decode_one, *job): job for job in jobs}
        try:
            for future in tqdm(
                as_completed(futures),
                total=len(jobs),
                desc=f"decoding {len(tracks)} tracks into the cache",
                unit="stem",
            ):
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return {f"{t.subset}/{t.name}": -(-t.nb_timesteps * sample_rate // t.rate) for t in tracks}


def _store(path: Path, audio: np.ndarray) -> None:
    """Save ``(nb_channels, nb_timesteps)`` float32 audio, as int16 where that is lossless."""
    as_int16 = _as_int16(audio)
    with _synced(path) as handle:
        np.save(handle, audio if as_int16 is None else as_int16)


def _as_int16(audio: np.ndarray, block: int = 2**18) -> np.ndarray | None:
    """``audio`` times 2**15 as int16 (half the disk space and read traffic) if exact."""
    out = np.empty(audio.shape, np.int16)
    for start in range(0, audio.shape[1], block):
        scaled = audio[:, start : start + block] * INT16_SCALE  # exact: a power of two
        if not (
            np.array_equal(scaled, np.rint(scaled))
            and scaled.min(initial=0) >= -(2**15)
            and scaled.max(initial=0) < 2**15
        ):
            return None
        out[:, start : start + block] = scaled
    return out


@contextmanager
def _synced(path: Path) -> Iterator[BinaryIO]:
    """A new file open for writing, flushed to disk when the block ends."""
    with open(path, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextmanager
def _build_lock(cache_dir: Path) -> Iterator[None]:
    """Hold the exclusive build lock of ``cache_dir`` (the kernel frees it if we die)."""
    with open(cache_dir / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale(cache_dir: Path) -> list[Path]:
    """Delete temporary folders of interrupted builds; call only holding the build lock."""
    stale = [p for p in Path(cache_dir).iterdir() if p.is_dir() and TMP_MARK in p.name]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def prune_superseded(cache_dir: Path, current: Path) -> list[Path]:
    """Delete caches of ``current``'s sources, rate and channels with another fingerprint.

    Such a cache was built before a source file changed and can never be selected again.
    Caches of other data sets, rates or channel counts are kept.
    """
    meta = json.loads((current / INDEX).read_text())
    identity = (meta["source"], meta["sample_rate"], meta["nb_channels"])
    pruned = []
    for path in Path(cache_dir).iterdir():
        if path == current or path.name.startswith(".") or not path.is_dir():
            continue
        try:
            other = json.loads((path / INDEX).read_text())
        except (OSError, ValueError):
            continue
        if (other.get("source"), other.get("sample_rate"), other.get("nb_channels")) == identity:
            shutil.rmtree(path, ignore_errors=True)
            pruned.append(path)
    return pruned
