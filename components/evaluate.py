"""Prefect task ``evaluate``: BSS Eval scores of a model folder, logged to the training runs."""

from pathlib import Path

from prefect import task

from components.runtime import retry_transient, run_logger
from unmixlab.evaluate import EXCERPT_SECONDS, Evaluation, log_evaluation, scores_markdown
from unmixlab.evaluate import evaluate as evaluate_model
from unmixlab.scoring import Scorer
from unmixlab.tracking.setup import ensure_tracking_reachable, resolve_tracking_uri


@task(name="evaluate", **retry_transient())
def evaluate(
    root: Path,
    model_dir: Path,
    out_dir: Path,
    run_ids: dict[str, str],
    parent_run_id: str | None = None,
    is_wav: bool = True,
    subset: str = "test",
    workers: int | None = None,
    niter: int = 1,
    residual: bool = False,
    excerpt_seconds: float = EXCERPT_SECONDS,
    device: str = "auto",
    scorer: Scorer = "unmixlab",
) -> Evaluation:
    """Score every target of ``model_dir`` on ``root/subset`` and log the scores.

    Each target's ``test_<metric>_<target>`` metrics go to its run in ``run_ids``; the parent
    run gets all of them. The tracking store is checked first, so an unreachable one fails
    (and is retried) before the long scoring.

    Raises:
        UnmixlabError: bad root or model folder, or the tracking store is unreachable.
    """
    ensure_tracking_reachable(resolve_tracking_uri())
    evaluation = evaluate_model(
        root,
        model_dir,
        is_wav=is_wav,
        targets=list(run_ids),
        out_dir=out_dir,
        subset=subset,
        workers=workers,
        niter=niter,
        residual=residual,
        excerpt_seconds=excerpt_seconds,
        device=device,
        scorer=scorer,
    )
    for target, run_id in run_ids.items():
        log_evaluation(run_id, evaluation, targets=[target])
    if parent_run_id is not None:
        log_evaluation(parent_run_id, evaluation)
    run_logger().info(
        "%s scores of %d %s tracks (%.0f s):\n%s",
        evaluation.scorer,
        len(evaluation.tracks),
        subset,
        evaluation.seconds,
        scores_markdown(evaluation.aggregate),
    )
    return evaluation
