"""The ``training`` flow: (synthesise) → prepare → train each target → evaluate → promote.

Parameters are a preset name and ``key=value`` overrides (see :mod:`unmixlab.experiment`).
One parent MLflow run holds the flow; each target trains in a nested run. The flow leaves a
markdown artifact with the scores and the MLflow links. It runs the same in Prefect's
ephemeral mode (just call it) and against a Prefect server (``PREFECT_API_URL``).
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from components.evaluate import evaluate
from components.parent_run import end_parent_run, start_parent_run
from components.prepare_data import prepare_data
from components.promote import promote
from components.synthesize import synthesize
from components.train import train
from unmixlab.experiment import load_preset, run_name
from unmixlab.files import link_latest
from unmixlab.render import render
from unmixlab.steps.train import TrainedModel
from unmixlab.tracking.links import run_url, runs_table_url
from unmixlab.tracking.parent_run import failure
from unmixlab.tracking.registry import Promotion
from unmixlab.tracking.schema import (
    DATASET_FINGERPRINT_TAG,
    PREFECT_FLOW_RUN_TAG,
    SEPARATION_METRICS,
    TRAINING_SECONDS,
)


@dataclass(frozen=True)
class TargetSummary:
    """One target's outcome: its training, its BSS Eval scores and its promotion."""

    trained: TrainedModel
    run_url: str
    scores: dict[str, float] | None  # metric -> dB, None without evaluation
    promotion: Promotion | None  # None without promotion


@dataclass(frozen=True)
class TrainingSummary:
    """What one ``training`` flow run produced, and where to look at it."""

    preset: str
    flow_run_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    parent_run_url: str
    runs_table_url: str
    model_dir: Path
    evaluation_dir: Path | None
    prepare_state: str  # "Completed", or "Cached" when the prepared data was reused
    targets: dict[str, TargetSummary]
    seconds: float

    def markdown(self) -> str:
        """Results table (per-target scores, training time, best valid loss), champions, links.

        The table keeps to eight narrow columns, so Prefect's artifact page shows it whole.
        """
        head = ["target", *(f"{m} (dB)" for m in SEPARATION_METRICS)]
        head += ["training (s)", "best valid loss (epoch)", "MLflow run"]
        rows, champions = [], []
        for target, s in self.targets.items():
            trained = s.trained
            scores = [f"{s.scores[m]:.2f}" if s.scores else "–" for m in SEPARATION_METRICS]
            rows.append(
                [
                    target,
                    *scores,
                    f"{trained.training_seconds:.1f}",
                    f"{trained.best_valid_loss:.5g} ({trained.best_epoch} of "
                    f"{trained.epochs_trained})",
                    f"[{trained.run_id[:8]}]({s.run_url})",
                ]
            )
            if s.promotion:
                promotion = s.promotion
                champions.append(
                    f"{promotion.model_name} v{promotion.version}: {promotion.decision}"
                )
        return render("training_summary.md.j2", s=self, header=head, rows=rows, champions=champions)


@flow(name="training")
def training(preset: str = "quickstart", overrides: list[str] | None = None) -> TrainingSummary:
    """Train, evaluate and promote the targets of a preset.

    Args:
        preset: a preset name (``quickstart``, ``umx``) or a YAML file.
        overrides: ``key=value`` settings with dotted keys, e.g. ``train.epochs=5``.

    Returns:
        The per-target results and where to find them.

    Raises:
        UnmixlabError: a bad preset or override, or bad data (at ``prepare_data``).
    """
    start = time.perf_counter()
    logger = get_run_logger()
    config = load_preset(preset, overrides)
    name = flow_run.get_name() or "local"
    run_dir = Path(config.output) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    model_dir = run_dir / "model"
    logger.info("preset %s: targets %s, outputs in %s", config.name, config.targets, run_dir)

    if config.data.synth is not None:
        synthesize(config.data.root, config.data.synth)
    prepared_state = prepare_data(config.data_config(), return_state=True)
    prepared = prepared_state.result()  # raises the library's error on bad data
    parent = start_parent_run(
        config,
        run_name=f"{config.name} {name}",
        tags={PREFECT_FLOW_RUN_TAG: name, DATASET_FINGERPRINT_TAG: prepared.fingerprint},
    )
    try:
        trained = {
            target: train(
                config.train_config(target, model_dir),
                prepared,
                config.experiment,
                parent.run_id,
                config.name,
                run_name(preset, overrides, config.train_config(target, model_dir)),
            )
            for target in config.targets
        }
        evaluation = None
        if config.evaluate.enabled:
            evaluation = evaluate(
                config.evaluate,
                config.data_config(),
                list(trained.values()),
                run_dir / "evaluation",
                parent.run_id,
            )
        promotions = {}
        if config.promote.enabled:
            promotions = {
                target: promote(config.promote, config.experiment, target)
                for target in config.targets
            }
    except BaseException as error:
        status, message = failure(error)
        end_parent_run(parent, status, error=message, return_state=True)  # keeps the first error
        raise
    total_training = sum(model.training_seconds for model in trained.values())
    end_parent_run(parent, "FINISHED", {TRAINING_SECONDS: total_training})
    link_latest(run_dir)  # runs/<preset>/latest: the newest finished run

    summary = TrainingSummary(
        preset=config.name,
        flow_run_name=name,
        tracking_uri=parent.tracking_uri,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        parent_run_url=run_url(parent.tracking_uri, parent.experiment_id, parent.run_id),
        runs_table_url=runs_table_url(
            parent.tracking_uri,
            parent.experiment_id,
            config.promote.metric_for(config.targets[0]),
            config.promote.greater_is_better,
        ),
        model_dir=model_dir,
        evaluation_dir=evaluation.per_track_dir.parent if evaluation else None,
        prepare_state=prepared_state.name,
        targets={
            target: TargetSummary(
                model,
                run_url(parent.tracking_uri, parent.experiment_id, model.run_id),
                evaluation.aggregate.get(target) if evaluation else None,
                promotions.get(target),
            )
            for target, model in trained.items()
        },
        seconds=time.perf_counter() - start,
    )
    create_markdown_artifact(
        markdown=summary.markdown(),
        key=re.sub(r"[^a-z0-9-]+", "-", f"training-{config.name}".lower()),
        description=f"Scores and MLflow runs of the '{config.name}' training",
    )
    logger.info("\n%s", summary.markdown())
    return summary
