"""``unmixlab train``: the reference Open-Unmix ``scripts/train.py`` flags, one per config field.

Every training is tracked as one MLflow run (``MLFLOW_TRACKING_URI``, else ./mlflow.db).
"""

import click
from pydantic import ValidationError

from pipelines.commands.options import config_options, given
from pipelines.commands.signals import stop_on_signals
from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError


@click.command()
@config_options(TrainConfig)
@click.option("--resume", is_flag=True, help="continue from OUTPUT/<target>.chkpnt")
@click.option("--experiment", default="unmixlab", show_default=True, help="MLflow experiment")
@click.option("--run-name", default=None, help="MLflow run name [default: generated]")
def train(resume: bool, experiment: str, run_name: str | None, **options: object) -> None:
    """Train one Open-Unmix target model, tracked in MLflow."""
    from unmixlab.tracking.runs import train_tracked

    try:
        config = TrainConfig(**given(options))
    except ValidationError as error:
        raise UnmixlabError(
            f"invalid settings: {error.errors()[0]['msg']}", "Fix the flag"
        ) from error
    with stop_on_signals():  # a stopped job ends its run KILLED
        tracked = train_tracked(config, experiment=experiment, run_name=run_name, resume=resume)
    result = tracked.result
    click.echo(
        f"trained {result.target}: best valid loss {result.best_loss:.5g} "
        f"(epoch {result.history.best_epoch} of {result.epochs_trained}), "
        f"{result.training_seconds:.1f} s; model in {result.output}; "
        f"MLflow run {tracked.run_id} in experiment '{experiment}'"
    )
