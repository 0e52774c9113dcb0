"""``unmixlab train``: the reference Open-Unmix ``scripts/train.py`` flags, one per config field."""

import click
from pydantic import ValidationError

from pipelines.commands.options import config_options, given
from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError


@click.command()
@config_options(TrainConfig)
@click.option("--resume", is_flag=True, help="continue from OUTPUT/<target>.chkpnt")
def train(resume: bool, **options: object) -> None:
    """Train one Open-Unmix target model."""
    from unmixlab.trainer import train as run_training

    try:
        config = TrainConfig(**given(options))
    except ValidationError as error:
        raise UnmixlabError(
            f"invalid settings: {error.errors()[0]['msg']}", "Fix the flag"
        ) from error
    result = run_training(config, resume=resume)
    click.echo(
        f"trained {result.target}: best valid loss {result.best_loss:.5g} "
        f"(epoch {result.history.best_epoch} of {result.epochs_trained}), "
        f"{result.training_seconds:.1f} s; model in {result.output}"
    )
