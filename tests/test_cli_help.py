"""``unmixlab --help`` and ``unmixlab run --help`` list the commands without importing them."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import COMMANDS
from pipelines.commands.run import FLOWS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "mlflow", "prefect", "optuna", "museval")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_imports_no_torch(args: list[str]):
    code = (
        "import sys\n"
        f"sys.argv = ['unmixlab', *{args!r}]\n"
        "from pipelines.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    *listing, imported = result.stdout.strip().splitlines()
    assert imported == "[]"
    table = COMMANDS if args == ["--help"] else FLOWS
    words = " ".join(" ".join(listing).split())  # click wraps long help lines
    for name, (_, help_text) in table.items():
        assert f"{name} {help_text}" in words, name


@pytest.mark.parametrize("table", [COMMANDS, FLOWS], ids=["commands", "flows"])
def test_the_listed_help_is_each_commands_own(table: dict[str, tuple[str, str]]):
    for name, (target, help_text) in table.items():
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert command.get_short_help_str(limit=300) == help_text, name
