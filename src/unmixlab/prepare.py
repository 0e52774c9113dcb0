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
        train_tracks: training track names.
        valid_tracks: validation track names.
        cache_folder: the decoded cache (None when caching is off).
        build_seconds: how long decoding took (None: the cache was reused, or is off).
    """

    config: DataConfig
    fingerprint: str
    train_tracks: tuple[str, ...]
    valid_tracks: tuple[str, ...]
    cache_folder: Path | None
    build_seconds: float | None = None

    def load(self) -> LoadedData:
        """The tracks and a reader; a cache deleted since is rebuilt, nothing else re-checked."""
        config = self.config
        tracks = discover(config.root, config.is_wav, "train")
        train = [track for track in tracks if track.name in self.train_tracks]
        valid = [track for track in tracks if track.name in self.valid_tracks]
        rate, channels = config.sample_rate, config.nb_channels
        if not config.cache:
            return LoadedData(
                train, valid, DecodingReader(tracks, rate, channels), self.fingerprint
            )
        cache = open_cache(self.cache_folder) or build_cache(
            tracks, config.cache_folder(), rate, channels
        )
        return LoadedData(train, valid, CachedReader(cache), self.fingerprint)


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
    names = (tuple(t.name for t in train), tuple(t.name for t in valid))
    return PreparedData(config, key, *names, folder, seconds)
