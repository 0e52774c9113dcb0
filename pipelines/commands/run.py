"""``unmixlab run``: run a Prefect flow (``training``, ``tuning``, ``study``) from a preset.

Each flow's command lives in its own module, imported only when that flow is run, so that
``unmixlab run training`` does not pay for Optuna and the others.
"""

import logging
import os

import click

from pipelines.commands.lazy import LazyGroup
from pipelines.commands.signals import stop_on_signals
from unmixlab.errors import UnmixlabError

# the loggers through which Prefect reports a failed task or flow run (with its traceback)
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")

# flow name -> ("module:attribute" holding its click command, its short help)
FLOWS = {
    "study": (
        "pipelines.commands.run_study:study",
        "Train every configuration of a study (with its seeds), then report on the hypotheses.",
    ),
    "training": (
        "pipelines.commands.run_training:training",
        "Synthesise or check the data, train each target, evaluate (BSS Eval v4), promote.",
    ),
    "tuning": (
        "pipelines.commands.run_tuning:tuning",
        "Search hyperparameters with Optuna; every trial is a nested MLflow run.",
    ),
}


class NoTracebackForBadInput(logging.Filter):
    """Keep Prefect's one-line report of a failed run; drop the traceback of bad input.

    The command ends with the error's one clear line; a traceback of an
    :class:`~unmixlab.errors.UnmixlabError` (a user's mistake, not a bug) only hides it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Strip the traceback of an :class:`UnmixlabError`; never drop the record."""
        if record.exc_info and isinstance(record.exc_info[1], UnmixlabError):
            record.exc_info = record.exc_text = None
        return True


@click.group(cls=LazyGroup, commands=FLOWS)
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run a pipeline flow (Prefect) from a preset: training, tuning or study."""
    for name in PREFECT_RUN_LOGGERS:
        logging.getLogger(name).addFilter(NoTracebackForBadInput())
    # the ephemeral Prefect server would log an error for each telemetry send it cannot make
    # offline; opt out unless the user chose otherwise
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    ctx.with_resource(stop_on_signals())  # Ctrl-C and SIGTERM stop the flow within seconds
