"""Training and validation data sets with the reference Open-Unmix sampling semantics.

Training items are random ``seq_dur`` chunks, ``samples_per_track`` per track per epoch,
optionally with stems from random tracks and random gain / channel swap per stem; the
mixture is the sum of the (augmented) stems. Validation items are whole tracks.

Randomness comes from ``numpy.random.default_rng((seed, epoch, index))``, so an item is the
same whatever the number of loader processes, and a resumed run sees the same data.
"""

import math
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from unmixlab.config import TARGETS
from unmixlab.data.cache import DecodedCache
from unmixlab.data.tracks import MusdbDecoder, Track


class ChunkReader(Protocol):
    """Reads ``(nb_channels, length)`` chunks of stems at the experiment's sample rate."""

    sample_rate: int

    def length(self, track: Track) -> int:
        """Track length in samples at ``sample_rate``."""

    def chunk(self, track: Track, stem: str, start: int, length: int) -> Tensor:
        """``(nb_channels, length)`` samples of ``stem`` from ``start`` (zero-padded)."""


class CachedReader:
    """Chunks from the memory-mapped decoded cache: no decoding at training time."""

    def __init__(self, cache: DecodedCache):
        self.cache = cache
        self.sample_rate = cache.sample_rate

    def length(self, track: Track) -> int:
        """Track length in samples at ``sample_rate``."""
        return self.cache.lengths[f"{track.subset}/{track.name}"]

    def chunk(self, track: Track, stem: str, start: int, length: int) -> Tensor:
        """``(nb_channels, length)`` samples from ``start``."""
        return self.cache.chunk(track, stem, start, length)


class DecodingReader:
    """Chunks decoded from the source files on every read, as the reference does."""

    def __init__(self, tracks: list[Track], sample_rate: int, nb_channels: int):
        self.decoder = MusdbDecoder(tracks)
        self.sample_rate = sample_rate
        self.nb_channels = nb_channels

    def length(self, track: Track) -> int:
        """Track length in samples at ``sample_rate``."""
        return math.ceil(track.nb_timesteps * self.sample_rate / track.rate)

    def chunk(self, track: Track, stem: str, start: int, length: int) -> Tensor:
        """``(nb_channels, length)`` samples from ``start``, decoded now."""
        audio = self.decoder.decode(
            track,
            stem,
            self.sample_rate,
            self.nb_channels,
            start=start / self.sample_rate,
            duration=length / self.sample_rate,
        )[:, :length]
        out = torch.zeros(self.nb_channels, length)
        out[:, : audio.shape[1]] = audio
        return out


class TrainingChunks(Dataset):
    """Random chunks: item ``i`` draws from track ``i // samples_per_track``.

    Items are ``(mixture, target)``, each ``(nb_channels, nb_timesteps)``.
    """

    def __init__(
        self,
        reader: ChunkReader,
        tracks: list[Track],
        target: str,
        seq_dur: float,
        samples_per_track: int,
        seed: int,
        random_track_mix: bool = False,
        augment: bool = True,
    ):
        self.reader = reader
        self.tracks = tracks
        self.target = target
        self.length = int(seq_dur * reader.sample_rate)
        self.samples_per_track = samples_per_track
        self.seed = seed
        self.random_track_mix = random_track_mix
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the chunks of ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tracks) * self.samples_per_track

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Item ``index`` of ``epoch`` for ``(epoch, index)``, or of the set epoch for ``index``.

        Pairs come from :class:`EpochShuffle`: loader processes that persist across epochs
        learn the epoch from each index, not from a :meth:`set_epoch` they never see.
        """
        epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
        rng = np.random.default_rng((self.seed, epoch, index))
        stems = {}
        for stem in TARGETS:
            i = (
                rng.integers(len(self.tracks))
                if self.random_track_mix
                else index // self.samples_per_track
            )
            track = self.tracks[i]
            start = int(rng.integers(0, max(self.reader.length(track) - self.length, 0) + 1))
            audio = self.reader.chunk(track, stem, start, self.length)
            if self.augment:
                audio = audio * float(rng.uniform(0.25, 1.25))
                if audio.shape[0] == 2 and rng.random() < 0.5:
                    audio = audio.flip(0)  # swap left and right
            stems[stem] = audio
        first, *others = stems.values()
        mixture = first.clone()  # summed in place, in the order stack(...).sum(0) would
        for audio in others:
            mixture += audio
        return mixture, stems[self.target]


class EpochShuffle(Sampler[tuple[int, int]]):
    """``(epoch, index)`` for every index of a data set, shuffled anew (seeded) each epoch."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the order of ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        for index in torch.randperm(self.size, generator=generator).tolist():
            yield self.epoch, index


class WholeTracks(Dataset):
    """Whole tracks for validation: items ``(mixture, target)``, ``(nb_channels, nb_timesteps)``."""

    def __init__(self, reader: ChunkReader, tracks: list[Track], target: str):
        self.reader = reader
        self.tracks = tracks
        self.target = target

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        track = self.tracks[index]
        n = self.reader.length(track)
        return self.reader.chunk(track, "mixture", 0, n), self.reader.chunk(
            track, self.target, 0, n
        )
