"""Prefect task ``measure_realtime``: the measure step, retried on transient failures."""

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.realtime import RealtimeSettings, RealtimeStats
from unmixlab.steps.measure import measure_realtime as measure_step
from unmixlab.steps.train import TrainedModel


@task(name="measure_realtime", **retry_transient())
def measure_realtime(settings: RealtimeSettings, model: TrainedModel) -> RealtimeStats:
    """Stream ``model`` block by block; log its real-time figures on its run."""
    stats = measure_step(settings, model)
    run_logger().info(
        "real-time factor of %s: %.3f (worst block %.2f of its duration, latency %.0f ms)",
        model.model_dir,
        stats.stream_rtf,
        stats.worst_block_ratio,
        stats.latency_ms,
    )
    return stats
