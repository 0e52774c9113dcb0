"""A click group whose sub-commands are imported only when they run."""

import importlib

import click


class LazyGroup(click.Group):
    """A click group that imports a sub-command only when it is invoked.

    Args:
        commands: sub-command name -> ("module:attribute", short help for the listing).
    """

    def __init__(self, *args: object, commands: dict[str, tuple[str, str]], **kwargs: object):
        super().__init__(*args, **kwargs)
        self.lazy_commands = commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Names of all sub-commands."""
        return sorted(self.lazy_commands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Import and return the sub-command ``name``."""
        if name not in self.lazy_commands:
            return None
        module, attribute = self.lazy_commands[name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the sub-commands with their short help, importing none of them."""
        rows = [(name, self.lazy_commands[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
