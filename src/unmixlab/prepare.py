"""The prepare step: check the data root, split it, build the decoded cache, fingerprint it.

:func:`prepare` runs once per pipeline run; its :class:`PreparedData` (paths, names and one
fingerprint, all serialisable) is what every later step receives. :meth:`PreparedData.load`
opens it for training without checking or decoding again.
"""

from dataclasses import dataclass
from pathlib import Path

from unmixlab.config import DataConfig
from unmixlab.data.cache import build_cache, fingerprint, open_cache
from unmixlab.data.datasets import CachedReader, ChunkReader, DecodingReader
from unmixlab.data.tracks import Track, check_channels, discover, split_train_valid


@dataclass(frozen=True)
class LoadedData:
    """Prepared data opened for training: the split's tracks and a chunk reader."""

    train: list[Track]
    valid: list[Track]
    reader: ChunkReader
    fingerprint: str


@dataclass(frozen=True)
class PreparedData:
    """What the prepare step produced, as values a Prefect task or a Kubeflow step can pass.

    Attributes:
        config: the data settings it was prepared with.
        fingerprint: identity of the source files, rate and channels (the cache's name).
        train: the checked training tracks.
        valid: the checked validation tracks.
        cache_folder: the decoded cache (None when caching is off).
        build_seconds: how long decoding took (None: the cache was reused, or is off).
    """

    config: DataConfig
    fingerprint: str
    train: tuple[Track, ...]
    valid: tuple[Track, ...]
    cache_folder: Path | None
    build_seconds: float | None = None

    @property
    def train_tracks(self) -> tuple[str, ...]:
        """Training track names."""
        return tuple(track.name for track in self.train)

    @property
    def valid_tracks(self) -> tuple[str, ...]:
        """Validation track names."""
        return tuple(track.name for track in self.valid)

    def load(self) -> LoadedData:
        """The tracks and a chunk reader; nothing is checked again (a deleted cache is rebuilt)."""
        config = self.config
        train, valid = list(self.train), list(self.valid)
        tracks = sorted(train + valid, key=lambda track: track.name)  # as discovered
        rate, channels = config.sample_rate, config.nb_channels
        if config.cache:
            cache = open_cache(self.cache_folder) or build_cache(
                tracks, config.cache_folder(), rate, channels
            )
            reader: ChunkReader = CachedReader(cache)
        else:
            reader = DecodingReader(tracks, rate, channels)
        return LoadedData(train, valid, reader, self.fingerprint)


def data_fingerprint(config: DataConfig) -> str:
    """The fingerprint :func:`prepare` would give, from file metadata only (no decoding).

    Raises:
        UnmixlabError: the root or one of its tracks is unusable (the message names it).
    """
    tracks = discover(config.root, config.is_wav, "train")
    return fingerprint(tracks, config.sample_rate, config.nb_channels)


def prepare(config: DataConfig) -> PreparedData:
    """Discover and check the training tracks, split off validation, decode the cache.

    Raises:
        UnmixlabError: the root or one of its tracks is unusable (the message names it).
    """
    tracks = discover(config.root, config.is_wav, "train")
    for track in tracks:  # before the cache: a refused track leaves no folder behind
        check_channels(track, config.nb_channels)
    train, valid = split_train_valid(tracks, config.valid_tracks, config.valid_count)
    key = fingerprint(tracks, config.sample_rate, config.nb_channels)
    folder = seconds = None
    if config.cache:
        cache = build_cache(tracks, config.cache_folder(), config.sample_rate, config.nb_channels)
        folder, seconds = cache.folder, cache.build_seconds
    return PreparedData(config, key, tuple(train), tuple(valid), folder, seconds)
