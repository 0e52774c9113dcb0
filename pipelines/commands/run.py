"""``unmixlab run``: run a Prefect flow (``training``, ``tuning``, ``study``) from a preset.

Each flow's command lives in its own module, imported only when that flow is run, so that
``unmixlab run training`` does not pay for Optuna and the others.
"""

import importlib
import logging
import os

import click

from pipelines.commands.signals import stop_on_signals
from unmixlab.errors import UnmixlabError

# the loggers through which Prefect reports a failed task or flow run (with its traceback)
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")

# flow name -> "module:attribute" holding its click command
FLOWS = {
    "study": "pipelines.commands.run_study:study",
    "training": "pipelines.commands.run_training:training",
    "tuning": "pipelines.commands.run_tuning:tuning",
}


class LazyFlows(click.Group):
    """A click group that imports each flow's command only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Names of all flows."""
        return sorted(FLOWS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Import and return the command of flow ``name``."""
        if name not in FLOWS:
            return None
        module, attribute = FLOWS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


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


@click.group(cls=LazyFlows)
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run a pipeline flow (Prefect) from a preset: training, tuning or study."""
    for name in PREFECT_RUN_LOGGERS:
        logging.getLogger(name).addFilter(NoTracebackForBadInput())
    # the ephemeral Prefect server would log an error for each telemetry send it cannot make
    # offline; opt out unless the user chose otherwise
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    ctx.with_resource(stop_on_signals())  # Ctrl-C and SIGTERM stop the flow within seconds
