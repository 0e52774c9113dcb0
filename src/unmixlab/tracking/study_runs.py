"""MLflow records of the seed study: each run's study tags and times, the report, read-back.

Writers (:func:`record_study_run`, :func:`log_study_report`) and the reader
(:func:`collect_results`) use the names of :mod:`unmixlab.tracking.schema`.
"""

import time
from collections.abc import Sequence
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Run, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from unmixlab.errors import UnmixlabError
from unmixlab.study.measurements import RunClock, StudyRecord
from unmixlab.study.results import RunResult
from unmixlab.study.settings import INDEPENDENT
from unmixlab.tracking.schema import (
    BLOCK_HOPS_TAG,
    CONFIGURATION_TAG,
    LATENCY_MS,
    LOAD_AFTER,
    LOAD_BEFORE,
    MODEL_DIR_TAG,
    RUN_CPU_SECONDS,
    RUN_POSITION,
    RUN_WALL_SECONDS,
    SAMPLES_PER_EPOCH,
    SEED_TAG,
    STREAM_RTF,
    STUDY_KEY_TAG,
    STUDY_TAG,
    TOTAL_TRAIN_SECONDS,
    TRAIN_LOSS,
    TRAIN_SECONDS,
    VALID_LOSS,
    VALID_SDR,
    WORST_BLOCK_RATIO,
    test_metric,
    verdict_tag,
)
from unmixlab.tracking.setup import resolve_tracking_uri


def study_client() -> MlflowClient:
    """A client of the configured tracking store."""
    return MlflowClient(resolve_tracking_uri())


def log_study_report(
    study_run_id: str, files: Sequence[Path], image_dir: Path, verdicts: dict[str, str]
) -> None:
    """Log the report files and their images on the study's run; tag each verdict's outcome.

    Args:
        study_run_id: the study's parent run.
        files: the report's pages (HTML, markdown), logged under ``report/``.
        image_dir: the folder of the images the markdown links (``report/figures``).
        verdicts: hypothesis key -> outcome, as tags ``verdict.<key>``.
    """
    client = study_client()
    for path in files:
        client.log_artifact(study_run_id, str(path), "report")
    client.log_artifacts(study_run_id, str(image_dir), "report/figures")
    for key, outcome in verdicts.items():
        client.set_tag(study_run_id, verdict_tag(key), outcome)


def record_study_run(
    run_id: str,
    *,
    study: str,
    key: str,
    clock: RunClock,
    chunks_per_epoch: int,
    model_dir: Path,
) -> float:
    """Tag a finished, scored training as one (configuration, seed) of a study; log its times.

    The last write of a study's training: a run with the study ``key`` is complete (trained,
    scored, streamed), and a rerun of the study reuses it (:func:`study_records`). Tags
    ``study``, ``study_key``, ``configuration``, ``seed``, ``model_dir`` and the run name
    ``<configuration> seed <seed>``; logs ``total_train_seconds`` (the sum of the trainer's
    per-epoch ``train_seconds``), ``samples_per_epoch`` and the clocks of ``clock``.

    Returns:
        The total training-pass seconds.
    """
    client = study_client()
    passes = {m.step: m.value for m in client.get_metric_history(run_id, TRAIN_SECONDS)}
    if not passes:
        raise UnmixlabError(
            f"MLflow run {run_id} logged no {TRAIN_SECONDS}",
            "Train through unmixlab.steps.train.train_model, which logs it every epoch",
        )
    total = sum(passes.values())
    now = int(time.time() * 1000)
    values = {
        SAMPLES_PER_EPOCH: chunks_per_epoch,
        RUN_POSITION: clock.position,
        RUN_WALL_SECONDS: clock.wall_seconds,
        RUN_CPU_SECONDS: clock.cpu_seconds,
        LOAD_BEFORE: clock.load[0],
        LOAD_AFTER: clock.load[1],
    }
    metrics = [Metric(TOTAL_TRAIN_SECONDS, total, now, max(passes))]
    metrics += [Metric(name, value, now, 0) for name, value in values.items()]
    tags = {
        MODEL_DIR_TAG: str(Path(model_dir).resolve()),
        CONFIGURATION_TAG: clock.configuration,
        SEED_TAG: str(clock.seed),
        MLFLOW_RUN_NAME: f"{clock.configuration} seed {clock.seed}",
        STUDY_TAG: study,
        STUDY_KEY_TAG: key,  # last in the batch, read as "complete"
    }
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
    return total


def _finished_runs(experiment_id: str, key: str) -> list[Run]:
    """The study's complete runs, oldest first (one per (configuration, seed) is kept)."""
    return study_client().search_runs(
        [experiment_id],
        filter_string=f"tags.{STUDY_KEY_TAG} = '{key}' and attributes.status = 'FINISHED'",
        max_results=10_000,
        order_by=["attributes.start_time ASC"],
    )


def study_records(experiment_id: str, key: str) -> dict[tuple[str, int], StudyRecord]:
    """Every complete training of the study ``key``: (configuration, seed) -> its record.

    Should a (configuration, seed) have two complete runs (two studies raced), the first
    counts, so reports and reruns agree on which.
    """
    found: dict[tuple[str, int], StudyRecord] = {}
    for run in _finished_runs(experiment_id, key):
        tags, metrics = run.data.tags, run.data.metrics
        clock = RunClock(
            tags[CONFIGURATION_TAG],
            int(tags[SEED_TAG]),
            round(metrics[RUN_POSITION]),
            metrics[RUN_WALL_SECONDS],
            metrics[RUN_CPU_SECONDS],
            (metrics[LOAD_BEFORE], metrics[LOAD_AFTER]),
        )
        record = StudyRecord(run.info.run_id, Path(tags[MODEL_DIR_TAG]), clock)
        found.setdefault((clock.configuration, clock.seed), record)
    return found


def _history(client: MlflowClient, run_id: str, key: str) -> tuple[float, ...]:  # noqa: F821
    by_step = {m.step: m.value for m in client.get_metric_history(run_id, key)}
    return tuple(by_step[step] for step in sorted(by_step))


def _count(value: float | None) -> int | None:
    return None if value is None else round(value)


def _parse(value: str, kind: type) -> int | bool:
    if kind is bool:
        return value.strip().lower() == "true"
    return int(float(value))


def collect_results(experiment_id: str, key: str, target: str) -> list[RunResult]:
    """Read back every complete training of the study ``key`` from MLflow (one per seed).

    A run belongs to the study when :func:`record_study_run` tagged it with ``key``, whichever
    study run it is nested under: a rerun reuses an interrupted study's finished trainings.
    """
    client = study_client()
    kinds = {k: bool if k == "unidirectional" else int for k in INDEPENDENT}
    kept = {r.run_id for r in study_records(experiment_id, key).values()}
    runs = [run for run in _finished_runs(experiment_id, key) if run.info.run_id in kept]
    results = []
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        run_id = run.info.run_id
        results.append(
            RunResult(
                configuration=tags[CONFIGURATION_TAG],
                seed=int(tags[SEED_TAG]),
                run_id=run_id,
                variables={k: _parse(params[k], kind) for k, kind in kinds.items()},
                train_loss=_history(client, run_id, TRAIN_LOSS),
                valid_loss=_history(client, run_id, VALID_LOSS),
                train_seconds=_history(client, run_id, TRAIN_SECONDS),
                sdr=metrics.get(test_metric("SDR", target)),
                rtf=metrics.get(STREAM_RTF),
                worst_block=metrics.get(WORST_BLOCK_RATIO),
                latency_ms=metrics.get(LATENCY_MS),
                sir=metrics.get(test_metric("SIR", target)),
                isr=metrics.get(test_metric("ISR", target)),
                sar=metrics.get(test_metric("SAR", target)),
                samples_per_epoch=_count(metrics.get(SAMPLES_PER_EPOCH)),
                valid_sdr=_history(client, run_id, VALID_SDR),
                block_hops=int(tags[BLOCK_HOPS_TAG]) if BLOCK_HOPS_TAG in tags else None,
            )
        )
    return results
