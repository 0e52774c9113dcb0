"""The decoded data cache: each track decoded once, read by random chunk from memory maps.

Layout: ``CACHE/<fingerprint>/<subset>/<track>/<stem>.npy`` (float32,
``(nb_channels, nb_timesteps)`` at the experiment's sample rate) plus ``index.json``.
The fingerprint covers the source files (path, size, modification time), the sample
rate and the channel count, so a changed source builds a new cache. A build writes into a
temporary folder renamed into place at the end: an interrupted build is never used.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from unmixlab.config import STEMS
from unmixlab.data.tracks import MusdbDecoder, Track

INDEX = "index.json"


def fingerprint(tracks: list[Track], sample_rate: int, nb_channels: int) -> str:
    """A short hash of the source files' identity and the decoding settings."""
    digest = hashlib.sha256(f"rate={sample_rate};channels={nb_channels}".encode())
    for track in tracks:
        for path in track.files():
            stat = path.stat()
            digest.update(
                f"{track.subset}/{track.name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()
            )
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class DecodedCache:
    """A complete cache folder; :meth:`load` maps a stem without reading it into memory."""

    folder: Path
    sample_rate: int
    nb_channels: int
    lengths: dict[str, int]  # "subset/track" -> nb_timesteps

    def stem_path(self, track: Track, stem: str) -> Path:
        """The ``.npy`` file of one stem."""
        return self.folder / track.subset / track.name / f"{stem}.npy"

    def load(self, track: Track, stem: str) -> np.ndarray:
        """Memory-mapped ``(nb_channels, nb_timesteps)`` float32 array of one stem."""
        return np.load(self.stem_path(track, stem), mmap_mode="r")

    def chunk(self, track: Track, stem: str, start: int, length: int) -> Tensor:
        """``(nb_channels, length)`` samples from ``start`` (zero-padded past the end)."""
        data = self.load(track, stem)[:, start : start + length]
        out = torch.zeros(self.nb_channels, length)
        out[:, : data.shape[1]] = torch.from_numpy(np.array(data))
        return out


def open_cache(folder: Path) -> DecodedCache | None:
    """The cache in ``folder`` if it is complete, else None."""
    index = folder / INDEX
    if not index.is_file():
        return None
    meta = json.loads(index.read_text())
    return DecodedCache(folder, meta["sample_rate"], meta["nb_channels"], meta["lengths"])


def build_cache(
    tracks: list[Track], cache_dir: Path, sample_rate: int, nb_channels: int
) -> DecodedCache:
    """Return the cache of ``tracks``, decoding them once if no complete cache matches."""
    key = fingerprint(tracks, sample_rate, nb_channels)
    folder = Path(cache_dir) / key
    existing = open_cache(folder)
    if existing is not None:
        return existing
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=folder.parent))
    try:
        decoder = MusdbDecoder(tracks)
        lengths = {}
        for track in tqdm(tracks, desc="decoding tracks into the cache", unit="track"):
            (tmp / track.subset / track.name).mkdir(parents=True)
            for stem in STEMS:
                audio = decoder.decode(track, stem, sample_rate, nb_channels)
                np.save(tmp / track.subset / track.name / f"{stem}.npy", audio.numpy())
            lengths[f"{track.subset}/{track.name}"] = int(audio.shape[1])
        meta = {"sample_rate": sample_rate, "nb_channels": nb_channels, "lengths": lengths}
        (tmp / INDEX).write_text(json.dumps(meta, indent=1))  # written last: marks completeness
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same cache first
            if open_cache(folder) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_cache(folder)
