"""MLflow records of an evaluation: ``test_<metric>_<target>`` metrics, tables, listening page."""

import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from unmixlab.evaluate import Evaluation
from unmixlab.listening import PAGE, TrackExcerpts, for_targets, render_page
from unmixlab.tracking.links import artifact_url
from unmixlab.tracking.names import add_to_note
from unmixlab.tracking.schema import (
    EVALUATION_ARTIFACTS,
    LISTENING_ARTIFACTS,
    SCORER_TAG,
    SCORER_VERSION_TAG,
    evaluate_setting_tag,
    test_metric,
)
from unmixlab.tracking.setup import resolve_tracking_uri


def log_evaluation(
    run_id: str,
    evaluation: Evaluation,
    targets: list[str] | None = None,
    settings: Mapping[str, object] | None = None,
) -> dict[str, float]:
    """Log ``test_<metric>_<target>`` metrics, their scorer and the score tables to a run.

    The scorer's name and version go to the tags ``scorer`` and ``scorer_version``.

    Args:
        run_id: the training's MLflow run (or a flow's parent run).
        evaluation: the scores, from :func:`unmixlab.evaluate.score_models`.
        targets: targets whose metrics to log; default: all in the evaluation.
        settings: how the scores were made (the scoring's arguments), as tags
            ``evaluate.<name>`` (tags: a run scored again may change them).

    Returns:
        The logged metrics (NaN scores are left out).
    """
    now = int(time.time() * 1000)
    chosen = {
        target: scores
        for target, scores in evaluation.aggregate.items()
        if targets is None or target in targets
    }
    metrics = {
        test_metric(metric, target): value
        for target, scores in chosen.items()
        for metric, value in scores.items()
        if not math.isnan(value)
    }
    client = MlflowClient(resolve_tracking_uri())
    tags = [RunTag(evaluate_setting_tag(k), str(v)) for k, v in (settings or {}).items()]
    scorer = {SCORER_TAG: evaluation.scorer, SCORER_VERSION_TAG: evaluation.scorer_version}
    tags += [RunTag(k, v) for k, v in scorer.items() if v]
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()], tags=tags)
    sdr = {
        f"SDR {target}": f"{scores['SDR']:.2f} dB"
        for target, scores in chosen.items()
        if not math.isnan(scores["SDR"])
    }
    add_to_note(client, run_id, sdr)
    for path in (evaluation.table_path, evaluation.markdown_path, evaluation.tracks_path):
        client.log_artifact(run_id, str(path), EVALUATION_ARTIFACTS)
    client.log_artifacts(run_id, str(evaluation.per_track_dir), f"{EVALUATION_ARTIFACTS}/tracks")
    if evaluation.listen_dir is not None:
        tracks = list(evaluation.excerpts)
        if targets is not None:
            tracks = for_targets(tracks, targets)
        title = f"Listening: run {client.get_run(run_id).info.run_name}"
        log_listening(
            client, run_id, evaluation.listen_dir, tracks, title, evaluation.excerpt_seconds
        )
    return metrics


def log_listening(
    client: MlflowClient,
    run_id: str,
    folder: Path,
    tracks: list[TrackExcerpts],
    title: str,
    excerpt_seconds: float,
    artifact_path: str = LISTENING_ARTIFACTS,
) -> None:
    """Log ``tracks``' excerpts and a page linking them through the MLflow UI to ``run_id``.

    MLflow shows an HTML artifact in a sandboxed frame where relative links resolve nowhere,
    so this copy of the page links each excerpt by its artifact address.
    """

    def link(path: str) -> str:
        return artifact_url(client.tracking_uri, run_id, f"{artifact_path}/{path}")

    with tempfile.TemporaryDirectory(prefix="unmixlab-listen-") as tmp:
        staged = Path(tmp)
        for track in tracks:
            (staged / track.name).mkdir()
            for path in (
                track.mixture,
                *(p for s in track.stems for p in (s.estimate, s.reference)),
            ):
                shutil.copy2(Path(folder, path), staged / path)
        (staged / PAGE).write_text(render_page(tracks, title, excerpt_seconds, link))
        client.log_artifacts(run_id, str(staged), artifact_path)
