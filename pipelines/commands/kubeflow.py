"""``unmixlab kubeflow``: compile the Kubeflow training pipeline, or run it here.

Examples::

    unmixlab kubeflow compile unmixlab-training.yaml --image registry.example.com/unmixlab:0.1.0
    unmixlab kubeflow run-local --preset quickstart --set train.epochs=5
    unmixlab kubeflow compile unmixlab-study.yaml --pipeline study --parallelism 8
    unmixlab kubeflow run-local --pipeline study --preset seed-study-quick
"""

from pathlib import Path

import click

from pipelines.commands.options import preset_options
from pipelines.commands.signals import stop_on_signals
from pipelines.kubeflow.pipeline import DEFAULT_IMAGE, PIPELINES

PIPELINE = click.option(
    "--pipeline",
    type=click.Choice(PIPELINES),
    default="training",
    show_default=True,
    help="training: data, prepare, train per target, evaluate, promote; study: timing "
    "pass, the study's trainings in a ParallelFor, verdicts and report",
)


@click.group()
def kubeflow() -> None:
    """Kubeflow Pipelines: the training pipeline and the study pipeline."""


@kubeflow.command(name="compile")
@click.argument("output", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--image",
    default=DEFAULT_IMAGE,
    show_default=True,
    help="image the steps run in (infra/Dockerfile)",
)
@click.option("--data-uri", help="MUSDB18-HQ folder to import (s3://...) [the preset's synth]")
@PIPELINE
@click.option(
    "--parallelism",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="study: trainings at once (0: as many as the cluster schedules)",
)
def compile_command(
    output: Path, image: str, data_uri: str | None, pipeline: str, parallelism: int
) -> None:
    """Write a pipeline as a KFP v2 YAML package, to upload to a Kubeflow cluster."""
    from pipelines.kubeflow.pipeline import compile_pipeline

    click.echo(compile_pipeline(output, image, data_uri, pipeline, parallelism))


@kubeflow.command(name="run-local")
@preset_options(default="quickstart", example="train.epochs=5")
@click.option(
    "--outputs",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("runs/kubeflow"),
    show_default=True,
    help="pipeline root: the steps' artifacts (data set, models, score tables)",
)
@click.option(
    "--data-uri",
    type=click.Path(exists=True, file_okay=False),
    help="MUSDB18-HQ folder to import (copied under --outputs) [the preset's synth]",
)
@PIPELINE
def run_local(
    preset: str, overrides: tuple[str, ...], outputs: Path, data_uri: str | None, pipeline: str
) -> None:
    """Run the pipeline here with KFP's local runner, each step a subprocess (no Docker)."""
    from pipelines.kubeflow.pipeline import run_local as run_pipeline
    from unmixlab.errors import UnmixlabError
    from unmixlab.experiment import load_preset
    from unmixlab.tracking.setup import resolve_tracking_uri

    config = load_preset(preset, overrides)  # a bad key fails here, in one line
    if data_uri is None and config.data.synth is None:
        raise UnmixlabError(
            f"preset '{config.name}' has no data.synth to make a data set from",
            "Pass --data-uri with your MUSDB18-HQ folder",
        )
    with stop_on_signals():
        run_pipeline(preset, list(overrides), outputs, data_uri, pipeline)
    click.echo(
        f"\npipeline finished: artifacts under {outputs}, MLflow runs in experiment "
        f"'{config.experiment}' of {resolve_tracking_uri()}"
    )
