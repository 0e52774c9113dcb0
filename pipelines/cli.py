"""The ``unmixlab`` command line: a click group whose sub-commands live in ``pipelines.commands``.

Sub-command modules are imported only when their command runs, so that ``unmixlab --help``
stays fast and imports no torch: the listing shows each command's help from
:data:`COMMANDS` (a test keeps it equal to the command's own). A command pays only for the
libraries it uses (Prefect, MLflow, museval).
"""

import sys
from pathlib import Path

import click

from pipelines.commands.lazy import LazyGroup
from unmixlab.errors import UnmixlabError
from unmixlab.files import write_error
from unmixlab.tracking.setup import hide_credentials

# sub-command name -> ("module:attribute" holding a click command or group, its short help)
COMMANDS = {
    "data": ("pipelines.commands.data:data", "Make and prepare MUSDB-format data sets."),
    "evaluate": (
        "pipelines.commands.evaluate:evaluate_command",
        "Separate every test track and score it with BSS Eval v4 (SDR, SIR, SAR, ISR).",
    ),
    "export": ("pipelines.commands.export:export", "Export trained models for other runtimes."),
    "kubeflow": (
        "pipelines.commands.kubeflow:kubeflow",
        "Kubeflow Pipelines: the training pipeline and the study pipeline.",
    ),
    "prepare": (
        "pipelines.commands.prepare:prepare",
        "Decode the training tracks of ROOT once into the cache that training reads.",
    ),
    "promote": (
        "pipelines.commands.promote:promote",
        "Register the best finished run's model as unmixlab-TARGET; move 'champion' if it wins.",
    ),
    "run": (
        "pipelines.commands.run:run",
        "Run a pipeline flow (Prefect) from a preset: training, tuning or study.",
    ),
    "separate": (
        "pipelines.commands.separate:separate",
        "Separate SONGS into one wav per target under OUT/<song>/.",
    ),
    "stream": (
        "pipelines.commands.stream:stream",
        "Separate with unidirectional models block by block, as a live stream would.",
    ),
    "train": (
        "pipelines.commands.train:train",
        "Train one Open-Unmix target model, tracked in MLflow.",
    ),
    "tune": (
        "pipelines.commands.tune:tune",
        "Work on Optuna searches started by `unmixlab run tuning`.",
    ),
}


@click.group(
    cls=LazyGroup,
    commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
