"""Prefect task ``register``: register a target's best model and promote it if it wins."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.runtime import (
    RETRIES,
    RETRY_DELAY_SECONDS,
    RETRY_JITTER_FACTOR,
    retry_if_transient,
    run_logger,
)
from unmixlab.tracking.registry import Promotion, promote


@task(
    name="register",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
    retry_jitter_factor=RETRY_JITTER_FACTOR,
    retry_condition_fn=retry_if_transient,
)
def register(
    experiment: str, metric: str, target: str, greater_is_better: bool = True
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
