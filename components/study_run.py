"""Prefect task ``study_run``: one training of a study, in whatever process or worker runs it.

The study flow calls it in its own process, submits it to a process pool
(:func:`worker_processes`: N processes on a CPU machine, one per GPU on a GPU machine), or
has a deployment's flow run call it on a work pool's worker. A retry resumes the training
from its model folder.
"""

import multiprocessing
import os
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from prefect import task
from prefect.task_runners import ProcessPoolTaskRunner

from components.runtime import retry_transient, run_logger
from unmixlab.experiment import load_preset
from unmixlab.steps.prepare import prepare_data
from unmixlab.study.measurements import StudyRecord
from unmixlab.study_steps import Training, train_study_run


@task(name="study_run", **retry_transient())
def study_run(
    preset: str,
    overrides: list[str],
    training: Training,
    parent_run_id: str,
    run_dir: Path,
    key: str,
) -> StudyRecord:
    """Train, score, stream and record ``training`` of the study ``key``.

    Raises:
        UnmixlabError: bad settings or data, or the tracking store is unreachable (retried).
    """
    config = load_preset(preset, overrides)
    prepared = prepare_data(config.data_config())  # the study's cache: decoded once already
    record = train_study_run(
        config, preset, overrides, training, prepared, parent_run_id, Path(run_dir), key
    )
    run_logger().info(
        "%s seed %d (run %d of the study's order): %.0f s, MLflow run %s",
        training.configuration,
        training.seed,
        training.position,
        record.clock.wall_seconds,
        record.run_id,
    )
    return record


def worker_processes(workers: int, gpus: int) -> ProcessPoolTaskRunner:
    """A pool of ``workers`` processes, each given its share of the CPU cores or one GPU.

    Args:
        workers: processes.
        gpus: visible GPUs (0: CPU only); worker ``i`` sees GPU ``i mod gpus`` alone.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    slots = multiprocessing.get_context("spawn").Value("i", 0)  # Prefect's pool spawns
    return ProcessPoolTaskRunner(
        max_workers=workers, initializer=_start_worker, initargs=(threads, gpus, slots)
    )


def _start_worker(threads: int, gpus: int, slots: Synchronized) -> None:
    """Give a new worker process its torch threads and, on a GPU machine, its own GPU."""
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    if gpus:  # before torch starts CUDA; indices into what this process was given
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(gpus))))
        os.environ["CUDA_VISIBLE_DEVICES"] = visible.split(",")[slot % gpus]
    import torch

    torch.set_num_threads(threads)
