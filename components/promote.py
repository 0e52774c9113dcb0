"""Prefect task ``promote``: register a target's best model and make it champion if it wins."""

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.step_settings import PromoteSettings
from unmixlab.steps.promote import promote as promote_step
from unmixlab.tracking.registry import Promotion


@task(name="promote", **retry_transient())
def promote(settings: PromoteSettings, experiment: str, target: str) -> Promotion:
    """The promote step (:func:`unmixlab.steps.promote.promote`), retried when transient."""
    promotion = promote_step(settings, experiment, target)
    run_logger().info(
        "%s v%s (%s %.4g): %s",
        promotion.model_name,
        promotion.version,
        settings.metric_for(target),
        promotion.candidate_value,
        promotion.decision,
    )
    return promotion
