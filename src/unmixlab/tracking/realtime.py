"""MLflow records of a real-time measurement: ``stream_rtf``, ``latency_ms`` and the block size."""

from mlflow import MlflowClient

from unmixlab.realtime import RealtimeStats
from unmixlab.tracking.schema import BLOCK_HOPS_TAG, REALTIME_METRICS
from unmixlab.tracking.setup import resolve_tracking_uri


def log_realtime(run_id: str, stats: RealtimeStats, block_hops: int) -> dict[str, float]:
    """Log :data:`~unmixlab.tracking.schema.REALTIME_METRICS` and the block size on ``run_id``.

    The block size is the tag ``realtime_block_hops``, so the study and the search can trade
    speed and latency against loss.

    Returns:
        Every figure of ``stats`` (logged or not).
    """
    figures = stats.as_dict()
    client = MlflowClient(tracking_uri=resolve_tracking_uri())
    for key in REALTIME_METRICS:
        client.log_metric(run_id, key, figures[key])
    client.set_tag(run_id, BLOCK_HOPS_TAG, str(block_hops))
    return figures
