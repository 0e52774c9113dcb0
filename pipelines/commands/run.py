"""``unmixlab run``: run a Prefect flow (``training``, ``tuning``, ``study``) from a preset.

Each flow's command lives in its own module, imported only when that flow is run, so that
``unmixlab run training`` does not pay for Optuna and the others.
"""

import importlib
import os

import click

from pipelines.commands.signals import stop_on_signals

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


@click.group(cls=LazyFlows)
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run a pipeline flow (Prefect) from a preset: training, tuning or study."""
    # the ephemeral Prefect server would log an error for each telemetry send it cannot make
    # offline; opt out unless the user chose otherwise
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    ctx.with_resource(stop_on_signals())  # Ctrl-C and SIGTERM stop the flow within seconds
