"""The ``unmixlab`` command line: a click group whose sub-commands live in ``pipelines.commands``.

Sub-command modules are imported lazily so that ``unmixlab --help`` stays fast and a
command only pays for the libraries it uses (Prefect, MLflow, museval).
"""

import importlib
import sys
from pathlib import Path

import click

from unmixlab.errors import UnmixlabError
from unmixlab.files import write_error
from unmixlab.tracking.setup import hide_credentials

# sub-command name -> "module:attribute" holding a click command or group
COMMANDS = {
    "data": "pipelines.commands.data:data",
    "evaluate": "pipelines.commands.evaluate:evaluate",
    "export": "pipelines.commands.export:export",
    "kubeflow": "pipelines.commands.kubeflow:kubeflow",
    "prepare": "pipelines.commands.prepare:prepare",
    "promote": "pipelines.commands.promote:promote",
    "run": "pipelines.commands.run:run",
    "separate": "pipelines.commands.separate:separate",
    "stream": "pipelines.commands.stream:stream",
    "train": "pipelines.commands.train:train",
    "tune": "pipelines.commands.tune:tune",
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Names of all sub-commands."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Import and return the sub-command ``name``."""
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Run, track and compare Open-Unmix source separation experiments."""


def main() -> None:
    """Console entry point: bad input ends with one clear line, not a traceback."""
    hide_credentials()  # no password in any URI that MLflow prints or unmixlab records
    try:
        cli.main(standalone_mode=False)
    except UnmixlabError as error:
        click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except OSError as error:  # a write outside the atomic writer: disk full, read-only
        reported = write_error(error, Path(error.filename or "<stdout>"))
        if reported is None:
            raise
        click.secho(f"error: {reported}", fg="red", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
