"""The measure step: stream a trained unidirectional model, log its real-time figures."""

from unmixlab.realtime import RealtimeSettings, RealtimeStats, measure_model
from unmixlab.steps.train import TrainedModel
from unmixlab.tracking.realtime import log_realtime


def measure_realtime(settings: RealtimeSettings, model: TrainedModel) -> RealtimeStats:
    """Stream ``model`` block by block; log ``stream_rtf`` & co on its training run.

    Raises:
        UnmixlabError: the model folder is missing or holds a bidirectional model.
    """
    stats = measure_model(model.model_dir, settings, [model.target])
    log_realtime(model.run_id, stats, settings.block_hops)
    return stats
