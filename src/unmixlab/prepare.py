"""The prepare step: check the data root, split it, build the decoded cache, fingerprint it."""

from dataclasses import dataclass
from pathlib import Path

from unmixlab.config import TrainConfig
from unmixlab.data.cache import build_cache, fingerprint
from unmixlab.data.datasets import CachedReader, ChunkReader, DecodingReader
from unmixlab.data.tracks import Track, check_channels, discover, split_train_valid


@dataclass(frozen=True)
class PreparedData:
    """What training needs: the split, a chunk reader and the data set fingerprint."""

    train: list[Track]
    valid: list[Track]
    reader: ChunkReader
    fingerprint: str


def cache_dir_for(config: TrainConfig) -> Path:
    """Where the decoded cache of ``config.root`` lives."""
    return config.cache_dir or Path(config.root) / ".unmixlab-cache"


def prepare_data(config: TrainConfig) -> PreparedData:
    """Discover and check the training tracks, split off validation, decode the cache.

    Raises:
        UnmixlabError: the root or one of its tracks is unusable (the message names it).
    """
    tracks = discover(config.root, config.is_wav, "train")
    for track in tracks:  # before the cache: a refused track leaves no folder behind
        check_channels(track, config.nb_channels)
    train, valid = split_train_valid(tracks, config.valid_tracks, config.valid_count)
    key = fingerprint(tracks, config.sample_rate, config.nb_channels)
    if config.cache:
        cache = build_cache(tracks, cache_dir_for(config), config.sample_rate, config.nb_channels)
        reader: ChunkReader = CachedReader(cache)
    else:
        reader = DecodingReader(tracks, config.sample_rate, config.nb_channels)
    return PreparedData(train, valid, reader, key)
