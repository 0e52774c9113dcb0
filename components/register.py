"""Prefect task ``register``: register a target's best model and promote it if it wins."""

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.tracking.registry import Promotion, promote


@task(name="register", **retry_transient())
def register(
    experiment: str, metric: str, target: str, greater_is_better: bool | None = None
) -> Promotion:
    """Register ``unmixlab-<target>`` from the experiment's best run; move ``champion`` if better.

    Raises:
        UnmixlabError: no finished run with ``metric``, or the tracking store is unreachable.
    """
    promotion = promote(experiment, metric, target, greater_is_better)
    run_logger().info(
        "%s v%s (%s %.4g): %s",
        promotion.model_name,
        promotion.version,
        metric,
        promotion.candidate_value,
        promotion.decision,
    )
    return promotion
