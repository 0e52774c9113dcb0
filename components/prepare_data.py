"""Prefect task ``prepare_data``: check the data root and build the decoded cache.

The task is cached on the data settings of its config, its source code and the identity
of the source files (path, size, modification time): a second run on unchanged data is a
cache hit (state ``Cached``) and decodes nothing. Settings that do not touch the data
(epochs, model size) share the cache. Should the decoded cache be deleted meanwhile,
training rebuilds it (``unmixlab.prepare.prepare_data`` reuses or builds it).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext

from components.runtime import run_logger
from unmixlab.config import TrainConfig
from unmixlab.prepare import cache_dir_for
from unmixlab.prepare import prepare_data as prepare

# task results (the paths below) persist here, relative to the working directory
RESULTS_DIR = Path(".unmixlab") / "prefect-results"
# the TrainConfig fields that decide what prepare_data produces
DATA_FIELDS = (
    "root",
    "is_wav",
    "sample_rate",
    "nb_channels",
    "cache",
    "cache_dir",
    "valid_tracks",
    "valid_count",
)


@dataclass(frozen=True)
class PreparedData:
    """Where the prepared data is: what later steps need, as paths and names."""

    root: Path
    cache_folder: Path | None  # the decoded cache (None when caching is off)
    fingerprint: str
    train_tracks: tuple[str, ...]
    valid_tracks: tuple[str, ...]


def data_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key: the data settings and the source files' identity.

    Cheap (file metadata only); an unusable root gets a key of its own, and the task then
    raises the library's clear error (failures are never cached).
    """
    config: TrainConfig = parameters["config"]
    root = Path(config.root or "")
    digest = hashlib.sha256(repr({k: getattr(config, k) for k in DATA_FIELDS}).encode())
    for path in sorted((root / "train").rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


@task(
    name="prepare_data",
    cache_policy=TASK_SOURCE + CachePolicy.from_cache_key_fn(data_key),
    persist_result=True,
    result_storage=RESULTS_DIR,
)
def prepare_data(config: TrainConfig) -> PreparedData:
    """Check ``config.root/train``, split off validation tracks, decode them into the cache.

    Raises:
        UnmixlabError: the root or one of its tracks is unusable (the message names it).
    """
    data = prepare(config)
    prepared = PreparedData(
        Path(config.root),
        cache_dir_for(config) / data.fingerprint if config.cache else None,
        data.fingerprint,
        tuple(t.name for t in data.train),
        tuple(t.name for t in data.valid),
    )
    run_logger().info(
        "prepared %d train + %d valid tracks of %s (fingerprint %s)",
        len(prepared.train_tracks),
        len(prepared.valid_tracks),
        config.root,
        prepared.fingerprint,
    )
    return prepared
