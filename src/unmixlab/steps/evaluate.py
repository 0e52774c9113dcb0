"""The evaluate step: BSS Eval scores of trained models, logged to their MLflow runs.

Every evaluate setting reaches :func:`unmixlab.evaluate.score_models` the same way, from
whichever orchestrator: the section is passed whole (:func:`scoring_options`), so a new
field of :class:`~unmixlab.step_settings.EvaluateSettings` needs only its use in the scoring.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from unmixlab.config import DataConfig
from unmixlab.errors import UnmixlabError
from unmixlab.evaluate import Evaluation, score_models
from unmixlab.step_settings import EvaluateSettings
from unmixlab.steps.train import TrainedModel
from unmixlab.tracking.evaluation import log_evaluation
from unmixlab.tracking.setup import ensure_tracking_reachable, resolve_tracking_uri


def scoring_options(settings: EvaluateSettings, device: str = "auto") -> dict[str, Any]:
    """The keyword arguments of :func:`score_models` that ``settings`` decides.

    Args:
        settings: the evaluate section, whole.
        device: the device when ``settings.device`` is unset (the training's).
    """
    options = settings.model_dump(exclude={"enabled"})
    return {**options, "device": settings.device or device}


def evaluate_folder(
    settings: EvaluateSettings,
    data: DataConfig,
    model_dir: Path,
    out_dir: Path,
    *,
    targets: Sequence[str] | None = None,
    runs: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    device: str = "auto",
) -> Evaluation:
    """Score the models in ``model_dir`` on ``data.root`` and log the scores.

    Args:
        settings: the evaluate section, whole.
        data: where the tracks are (``root``, ``is_wav``).
        model_dir: model folder in the reference layout.
        out_dir: folder for the per-track JSON, tables and listening page.
        targets: targets to score (default: those of ``runs``, else all in the folder).
        runs: target -> its training run; each gets its own target's metrics, and the
            settings as tags ``evaluate.<name>``.
        parent_run_id: a run that gets every target's metrics.
        device: the device when ``settings.device`` is unset.

    Raises:
        UnmixlabError: bad root or model folder, or the tracking store is unreachable
            (checked before the long scoring).
    """
    runs = dict(runs or {})
    if runs or parent_run_id:
        ensure_tracking_reachable(resolve_tracking_uri())
    options = scoring_options(settings, device)
    evaluation = score_models(
        data.root,
        model_dir,
        is_wav=data.is_wav,
        targets=list(targets or runs) or None,
        out_dir=out_dir,
        **options,
    )
    for target, run_id in runs.items():
        log_evaluation(run_id, evaluation, targets=[target], settings=options)
    if parent_run_id is not None:
        log_evaluation(parent_run_id, evaluation, settings=options)
    return evaluation


def evaluate_models(
    settings: EvaluateSettings,
    data: DataConfig,
    models: Sequence[TrainedModel],
    out_dir: Path,
    parent_run_id: str | None = None,
) -> Evaluation:
    """Score trained models sharing one folder; log each target's scores to its run.

    Raises:
        UnmixlabError: the models lie in different folders, or as :func:`evaluate_folder`.
    """
    folders = {Path(model.model_dir) for model in models}
    if len(folders) != 1:
        raise UnmixlabError(
            f"the models to score lie in {len(folders)} folders",
            "Evaluate each folder on its own",
        )
    return evaluate_folder(
        settings,
        data,
        folders.pop(),
        out_dir,
        runs={model.target: model.run_id for model in models},
        parent_run_id=parent_run_id,
        device=models[0].device,
    )
