"""``unmixlab train``: the reference Open-Unmix ``scripts/train.py`` flags, one per config field.

Every training is tracked as one MLflow run (``MLFLOW_TRACKING_URI``, else ./mlflow.db).
"""

from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from pipelines.commands.options import config_options, flag_error, given
from pipelines.commands.signals import stop_on_signals
from unmixlab.config import TrainConfig

if TYPE_CHECKING:
    from unmixlab.trainer import TrainResult


@click.command()
@config_options(TrainConfig.fields())
@click.option(
    "--resume",
    is_flag=True,
    help="continue from OUTPUT/<target>.chkpnt with its settings; flags change the run's",
)
@click.option("--experiment", default="unmixlab", show_default=True, help="MLflow experiment")
@click.option(
    "--run-name",
    default=None,
    help="MLflow run name [default: OUTPUT's name · target · hidden and batch size · seed]",
)
def train(resume: bool, experiment: str, run_name: str | None, **options: object) -> None:
    """Train one Open-Unmix target model, tracked in MLflow."""
    from unmixlab.tracking.names import training_run_name
    from unmixlab.tracking.runs import train_tracked
    from unmixlab.trainer import resume_config

    try:
        config = resume_config(given(options)) if resume else TrainConfig(**given(options))
    except ValidationError as error:
        raise flag_error(error) from error
    run_name = run_name or training_run_name(config.flat(), first=config.run.output.name)
    with stop_on_signals():  # a stopped job ends its run KILLED
        tracked = train_tracked(config, experiment=experiment, run_name=run_name, resume=resume)
    result = tracked.result
    if result.trained_nothing:
        click.echo(f"nothing to train: {_why_nothing(result, config)}")
    else:
        click.echo(
            f"trained {result.target}: best valid loss {result.best_loss:.5g} "
            f"(epoch {result.history.best_epoch} of {result.epochs_trained}), "
            f"{result.training_seconds:.1f} s; model in {result.output}"
        )
    if tracked.unsent:
        click.secho(f"warning: {tracked.unsent}", fg="yellow", err=True)
    else:
        click.echo(f"MLflow run {tracked.run_id} in experiment '{experiment}'")


def _why_nothing(result: "TrainResult", config: TrainConfig) -> str:
    """Why a resume trained no epoch, and which flag trains more."""
    done = f"{result.output} is trained to epoch {result.epochs_trained}"
    if result.stopped_early:
        return (
            f"{done}, where it stopped early ({config.run.patience} epochs without improvement); "
            "raise --patience to train on"
        )
    return f"{done}, and --epochs is {config.run.epochs}; raise --epochs to train on"
