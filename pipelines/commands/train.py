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
    from unmixlab.steps.train import TrainedModel


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
    from unmixlab.steps.train import train_model
    from unmixlab.tracking.names import training_run_name
    from unmixlab.trainer import resume_config

    try:
        config = resume_config(given(options)) if resume else TrainConfig(**given(options))
    except ValidationError as error:
        raise flag_error(error) from error
    run_name = run_name or training_run_name(config.flat(), first=config.run.output.name)
    with stop_on_signals():  # a stopped job ends its run KILLED
        model = train_model(config, experiment=experiment, run_name=run_name, resume=resume)
    if model.trained_nothing:
        click.echo(f"nothing to train: {_why_nothing(model, config)}")
    else:
        click.echo(
            f"trained {model.target}: best valid loss {model.best_valid_loss:.5g} "
            f"(epoch {model.best_epoch} of {model.epochs_trained}), "
            f"{model.training_seconds:.1f} s; model in {model.model_dir}"
        )
    click.echo(f"MLflow run {model.run_id} in experiment '{experiment}'")


def _why_nothing(model: "TrainedModel", config: TrainConfig) -> str:
    """Why a resume trained no epoch, and which flag trains more."""
    done = f"{model.model_dir} is trained to epoch {model.epochs_trained}"
    if model.stopped_early:
        return (
            f"{done}, where it stopped early ({config.run.patience} epochs without improvement); "
            "raise --patience to train on"
        )
    return f"{done}, and --epochs is {config.run.epochs}; raise --epochs to train on"
