"""``unmixlab run tuning``: the Optuna study of a preset, as a Prefect flow.

Examples::

    unmixlab run tuning --preset quickstart --trials 20
    unmixlab run tuning --preset quickstart --trials 40 --workers 2 --objective loss,rtf
    unmixlab run tuning --preset quickstart --storage postgresql://optuna@db/optuna
    optuna-dashboard sqlite:///optuna.db          # watch it (default storage)

Running the same command again resumes the study (same ``tune.study_name``, default the
preset's name) until it holds ``--trials`` trials. Machines join a study on shared storage
with ``unmixlab tune worker``.
"""

import click

from pipelines.commands.options import preset_options
from unmixlab.databases import require_driver
from unmixlab.experiment import load_preset

# command-line shortcut -> the preset setting it overrides
SHORTCUTS = {
    "trials": "tune.trials",
    "workers": "tune.workers",
    "objective": "tune.objective",
    "pruner": "tune.pruner",
    "storage": "tune.storage",
    "study_name": "tune.study_name",
    "epochs": "tune.epochs",
    "train_best": "tune.train_best",
}


@click.command()
@preset_options(default="tune-quickstart", example="tune.space.hidden_size=[64,128]", flow="tuning")
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    help="finished (complete or pruned) trials the study should hold, all workers together "
    "[default: the preset's tune.trials, 16 in tune-quickstart]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="worker processes on this machine [default: the preset's tune.workers, 1]",
)
@click.option(
    "--objective",
    type=click.Choice(["loss", "loss,time", "loss,rtf"]),
    help="validation loss, or loss against seconds per epoch / real-time factor",
)
@click.option("--pruner", type=click.Choice(["median", "hyperband", "none"]))
@click.option(
    "--storage", help="sqlite:///FILE, postgresql://USER@HOST/DB or a journal file [./optuna.db]"
)
@click.option("--study-name", help="study to create or resume [the preset's name]")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="epochs per trial [default: the preset's tune.epochs, 8 in tune-quickstart]",
)
@click.option(
    "--train-best/--no-train-best",
    default=None,
    help="train the best configuration in full, evaluate and promote it",
)
def tuning(preset: str, overrides: tuple[str, ...], **shortcuts: object) -> None:
    """Search hyperparameters with Optuna; every trial is a nested MLflow run."""
    settings = [*overrides, *shortcut_overrides(shortcuts)]
    # a bad key, or a database without its driver, fails here in one line, before Prefect
    config = load_preset(preset, settings)
    require_driver(config.tune.storage or "", "the Optuna storage (--storage)")
    from pipelines.prefect_server import prefect_api
    from pipelines.tuning import tuning as tuning_flow

    with prefect_api():
        summary = tuning_flow(preset=preset, overrides=settings)
    click.echo("\n" + summary.markdown())


def shortcut_overrides(values: dict[str, object]) -> list[str]:
    """``--trials 8`` -> ``tune.trials=8`` (options left unset add nothing)."""
    settings = []
    for option, value in values.items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            settings.append(f"{SHORTCUTS[option]}={text}")
    return settings
