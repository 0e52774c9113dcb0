"""Prefect task ``prepare_data``: check the data root and build the decoded cache, once per run.

The task is cached on the data settings, its source code and the data's fingerprint (source
files' identity, rate, channels): a second run on unchanged data is a cache hit (state
``Cached``) and decodes nothing. Settings that do not touch the data (epochs, model size)
share the cache. Its :class:`~unmixlab.prepare.PreparedData` is what training receives;
should the decoded cache be deleted meanwhile, training rebuilds it.
"""

import hashlib
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext

from components.runtime import run_logger
from unmixlab.config import DataConfig
from unmixlab.errors import UnmixlabError
from unmixlab.prepare import PreparedData, data_fingerprint
from unmixlab.steps.prepare import prepare_data as prepare_step

# task results (the prepared data) persist here, relative to the working directory
RESULTS_DIR = Path(".unmixlab") / "prefect-results"


def data_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key: the data settings and the data's fingerprint (file metadata only).

    An unusable root gets a key of its own, and the task then raises the library's clear
    error (failures are never cached).
    """
    config: DataConfig = parameters["config"]
    try:
        identity = data_fingerprint(config)
    except UnmixlabError as error:
        identity = f"unusable: {error}"
    return hashlib.sha256(f"{config.model_dump_json()}|{identity}".encode()).hexdigest()


@task(
    name="prepare_data",
    cache_policy=TASK_SOURCE + CachePolicy.from_cache_key_fn(data_key),
    persist_result=True,
    result_storage=RESULTS_DIR,
)
def prepare_data(config: DataConfig) -> PreparedData:
    """Check ``config.root/train``, split off validation tracks, decode them into the cache.

    Raises:
        UnmixlabError: the root or one of its tracks is unusable (the message names it).
    """
    prepared = prepare_step(config)
    run_logger().info(
        "prepared %d train + %d valid tracks of %s (fingerprint %s)",
        len(prepared.train_tracks),
        len(prepared.valid_tracks),
        config.root,
        prepared.fingerprint,
    )
    return prepared
