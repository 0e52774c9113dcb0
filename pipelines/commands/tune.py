"""``unmixlab tune worker``: join a running study from any machine that reaches its storage.

The study (started by ``unmixlab run tuning``) stores its settings, so a worker needs only
the storage and the study name; it needs the data at the same path (``data.root``) and the
same MLflow tracking store (``MLFLOW_TRACKING_URI``). Example, two machines on PostgreSQL::

    export MLFLOW_TRACKING_URI=http://mlflow:5000 PGPASSWORD=...
    unmixlab run tuning --preset quickstart --storage postgresql://optuna@db/optuna   # machine A
    unmixlab tune worker --study quickstart --storage postgresql://optuna@db/optuna   # machine B

Workers stop when the study holds its trial cap; a killed worker's trial is marked FAILED
by the heartbeat of the others.
"""

import click

from pipelines.commands.options import device_option
from unmixlab.tuning.storage import STORAGE_ENV


@click.group()
def tune() -> None:
    """Work on Optuna searches started by `unmixlab run tuning`."""


@tune.command()
@click.option("--study", "study_name", required=True, help="the study's name")
@click.option(
    "--storage",
    envvar=STORAGE_ENV,
    required=True,
    help=f"the study's storage URL or journal file [${STORAGE_ENV}]",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="study-wide trial cap [the study's tune.trials]",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="seconds to wait for the study to be created",
)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=None,
    help="at most this many trials from this worker",
)
@device_option(default=None, unset="the study's train.device")
def worker(
    study_name: str,
    storage: str,
    trials: int | None,
    wait: float,
    max_trials: int | None,
    device: str | None,
) -> None:
    """Run trials of a stored study until it holds its trial cap."""
    from unmixlab.tuning.search import run_worker, wait_for_study
    from unmixlab.tuning.storage import public_url

    wait_for_study(storage, study_name, wait)
    count = run_worker(
        storage, study_name, n_trials=max_trials, cap=trials, progress=True, device=device
    )
    click.echo(f"worker ran {count} trial(s) of study {study_name} in {public_url(storage)}")
