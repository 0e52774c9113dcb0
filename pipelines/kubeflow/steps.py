"""The pipeline's steps: bodies of lightweight Python components, one per function.

KFP ships each function's source on its own (no module globals), so every body imports what
it uses. Each step loads the preset with the run's overrides
(:func:`unmixlab.experiment.load_preset`) and, when it reads the data set, points
``data.root`` at the input ``Dataset``, the same override ``unmixlab run study --root`` makes.
MLflow settings come from the environment (``MLFLOW_TRACKING_URI``), as for the CLI.
"""

from kfp import dsl


def synth_data(preset: str, overrides: list, data: dsl.Output[dsl.Dataset]):
    """Write the preset's synthetic MUSDB18-HQ data set (its ``data.synth``) into ``data``."""
    from unmixlab.errors import UnmixlabError
    from unmixlab.experiment import load_preset
    from unmixlab.synth import synthesize

    config = load_preset(preset, overrides)
    if config.data.synth is None:
        raise UnmixlabError(
            f"preset '{config.name}' has no data.synth to make a data set from",
            "Compile the pipeline with --data-uri <MUSDB18-HQ folder in the object store>",
        )
    synthesize(data.path, **config.data.synth.model_dump())
    data.metadata.update(config.data.synth.model_dump(mode="json"))


def prepare_data(preset: str, overrides: list, data: dsl.Input[dsl.Dataset]) -> list:
    """Check the data set and decode it into its cache once; return the preset's targets."""
    from unmixlab.experiment import load_preset
    from unmixlab.prepare import prepare

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    prepared = prepare(config.data_config())
    print(
        f"prepared {len(prepared.train)} train + {len(prepared.valid)} valid tracks "
        f"(fingerprint {prepared.fingerprint}); targets {list(config.targets)}"
    )
    return list(config.targets)


def train_target(
    preset: str,
    overrides: list,
    target: str,
    data: dsl.Input[dsl.Dataset],
    model: dsl.Output[dsl.Model],
):
    """Train one target into ``model`` (reference layout), tracked as one MLflow run."""
    from pathlib import Path

    from unmixlab.experiment import load_preset
    from unmixlab.tracking.runs import train_tracked

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    tracked = train_tracked(
        config.train_config(target, Path(model.path)),
        experiment=config.experiment,
        run_name=target,
        preset=config.name,
        tags={"orchestrator": "kubeflow"},
    )
    result = tracked.result
    model.metadata.update(
        {
            "target": target,
            "mlflow_run_id": tracked.run_id,
            "mlflow_model_uri": tracked.model_uri or "",
            "best_valid_loss": result.best_loss,
            "best_epoch": result.history.best_epoch,
            "training_seconds": result.training_seconds,
        }
    )


def evaluate_model(
    preset: str,
    overrides: list,
    target: str,
    data: dsl.Input[dsl.Dataset],
    model: dsl.Input[dsl.Model],
    scores: dsl.Output[dsl.Metrics],
    tables: dsl.Output[dsl.Artifact],
):
    """Score the test tracks (BSS Eval v4); log the scores to the training's MLflow run."""
    import math
    from pathlib import Path

    from unmixlab.evaluate import evaluate, log_evaluation, scores_markdown
    from unmixlab.experiment import load_preset

    config = load_preset(preset, [*overrides, f"data.root={data.path}", "data.synth=null"])
    settings = config.evaluate
    evaluation = evaluate(
        Path(data.path),
        Path(model.path),
        is_wav=config.data.is_wav,
        targets=[target],
        out_dir=Path(tables.path),
        subset=settings.subset,
        workers=settings.workers,
        niter=settings.niter,
        residual=settings.residual,
        scorer=settings.scorer,
    )
    log_evaluation(model.metadata["mlflow_run_id"], evaluation, targets=[target])
    for metric, value in evaluation.aggregate[target].items():
        if not math.isnan(value):
            scores.log_metric(f"{metric.lower()}_{target}", value)
    print(scores_markdown(evaluation.aggregate))


def promote_model(preset: str, overrides: list, target: str, scores: dsl.Input[dsl.Metrics]) -> str:
    """Register the experiment's best ``target`` model; move ``champion`` if it wins."""
    from unmixlab.experiment import load_preset
    from unmixlab.tracking.registry import promote

    config = load_preset(preset, overrides)
    promotion = promote(
        config.experiment,
        config.promote.metric_for(target),
        target,
        config.promote.greater_is_better,
    )
    return f"{promotion.model_name} v{promotion.version}: {promotion.decision}"
