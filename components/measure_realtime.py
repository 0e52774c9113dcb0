"""Prefect task ``measure_realtime``: stream a unidirectional model, log its real-time figures."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.realtime import log_realtime_metrics


@task(name="measure_realtime", **retry_transient())
def measure_realtime(
    run_id: str, model_dir: Path, seconds: float, block_hops: int = 2
) -> dict[str, float]:
    """Stream the model in ``model_dir`` (``block_hops`` per block); log its figures on ``run_id``.

    Returns:
        The figures of :func:`unmixlab.realtime.log_realtime_metrics`.
    """
    figures = log_realtime_metrics(run_id, model_dir, block_hops, seconds)
    run_logger().info(
        "real-time factor of %s: %.3f (worst block %.2f of its duration, latency %.0f ms)",
        model_dir,
        figures["stream_rtf"],
        figures["worst_block_ratio"],
        figures["latency_ms"],
    )
    return figures
