"""The promote step: register a target's best run; move its ``champion`` alias if it wins."""

from unmixlab.step_settings import PromoteSettings
from unmixlab.tracking.registry import Promotion, promote_best_run


def promote(settings: PromoteSettings, experiment: str, target: str) -> Promotion:
    """Register ``unmixlab-<target>`` from the best run on ``settings.metric``; promote if better.

    Raises:
        UnmixlabError: no finished run with the metric and a model, or the store is unreachable.
    """
    return promote_best_run(
        experiment, settings.metric_for(target), target, settings.greater_is_better
    )
