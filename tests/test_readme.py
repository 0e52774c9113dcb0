"""README.md works as written: its command-line examples run, in order, in a fresh folder.

The rules, so that a README edit that breaks an example fails here:

- Every fenced ```` ```bash ```` block of README.md is an example. They run in the order they
  appear, each as ``bash -e -o pipefail``, in one temporary folder that stands for a fresh
  checkout's root: ``.venv`` links to this Python environment (so ``. .venv/bin/activate``
  works) and ``song.wav`` is 4 s of synthetic music (the song of your own that the examples
  separate). Variables a block exports reach the blocks after it, as in one terminal. MLflow and
  Prefect run on their defaults there (``./mlflow.db``, a temporary Prefect server).
- A block right after ``<!-- readme-test: skip: REASON -->`` does not run: it needs what a
  test machine lacks (a GPU, MUSDB18, docker, a long-running server, internet) or hours.
- They run by ``make test-readme`` (marker ``readme``), which CI runs after ``make test``: the
  examples train, evaluate and tune for real, which would double the suite's time.
- Sizes shrink through two explicit tables and nothing else: :data:`SUBSTITUTE` replaces whole
  flags, and :data:`APPEND` adds flags to the end of a command that starts with its key (click
  keeps the last value of a repeated flag, so ``--trials 1`` wins over ``--trials 16``).
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(?P<reason>.*?)\s*-->")

SUBSTITUTE = {"--epochs 10": "--epochs 1", "--epochs 20": "--epochs 2"}
SMALL = "--set train.epochs=1 --set train.samples_per_track=2"
APPEND = {
    "unmixlab train ": "--samples-per-track 2 --seq-dur 1",
    "unmixlab run training": SMALL,
    "unmixlab kubeflow run-local": SMALL,
    "unmixlab run tuning": f"--trials 1 --epochs 1 {SMALL}",
}
BLOCK_SECONDS = 900  # one block, on a loaded 2-core machine


@dataclass(frozen=True)
class Example:
    """One ```` ```bash ```` block of README.md."""

    line: int  # of the opening fence, 1-based
    script: str
    skip: str | None  # why it does not run here


def examples(text: str) -> list[Example]:
    """The bash blocks of ``text``, each with the skip reason written right before it."""
    found, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```bash":
            index += 1
            continue
        end = lines.index("```", index + 1)
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = SKIP.fullmatch(before.strip())
        script = "\n".join(lines[index + 1 : end])
        found.append(Example(index + 1, script, marker["reason"] if marker else None))
        index = end + 1
    return found


def reduced(script: str) -> str:
    """``script`` at test size: :data:`SUBSTITUTE`, then :data:`APPEND` per command."""
    for flag, smaller in SUBSTITUTE.items():
        script = re.sub(rf"{re.escape(flag)}\b", smaller, script)
    commands = re.sub(r"\\\n\s*", "", script).splitlines()  # join continued lines
    out = []
    for command in commands:
        code, comment = re.match(r"(.*?)(\s+#\s.*)?$", command).groups()
        extra = next((flags for start, flags in APPEND.items() if code.startswith(start)), None)
        out.append(f"{code} {extra}{comment or ''}" if extra else command)
    return "\n".join(out)


def test_every_example_runs_here_or_says_why_not() -> None:
    found = examples(README.read_text())
    assert len(found) >= 15, "README.md lost its examples, or the parser its way"
    assert all(example.skip != "" for example in found), "a skip marker without a reason"
    running = [example for example in found if example.skip is None]
    assert len(running) >= 8
    assert any("--resume" in example.script for example in running)
    assert reduced("unmixlab run training --preset quickstart   # what `make demo` runs") == (
        f"unmixlab run training --preset quickstart {SMALL}   # what `make demo` runs"
    )
    assert reduced("unmixlab train --epochs 10 \\\n    --output m") == (
        "unmixlab train --epochs 1 --output m --samples-per-track 2 --seq-dur 1"
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh folder as a checkout's root, and the environment of a new terminal there."""
    folder = tmp_path_factory.mktemp("readme")
    if (Path(sys.prefix) / "bin" / "activate").is_file():
        (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    else:  # not a virtualenv: an activate script that puts this Python first
        activate = folder / ".venv" / "bin" / "activate"
        activate.parent.mkdir(parents=True)
        activate.write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    rate = 44100
    time = np.arange(4 * rate) / rate
    tone = 0.2 * np.sin(2 * np.pi * 220 * time) * (1 + np.sin(2 * np.pi * 2 * time)) / 2
    noise = 0.05 * np.random.default_rng(0).standard_normal(time.size)
    sf.write(folder / "song.wav", np.stack([tone + noise, tone - noise], axis=1), rate)
    server = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "UNMIXLAB_ARTIFACTS", "PREFECT_API_URL")
    env = {key: value for key, value in os.environ.items() if key not in server}
    env["PREFECT_HOME"] = str(folder / ".prefect")
    (folder / "env.sh").write_text("")
    return folder, env


@pytest.mark.readme
@pytest.mark.timeout(BLOCK_SECONDS)
@pytest.mark.parametrize(
    "example",
    [example for example in examples(README.read_text()) if example.skip is None],
    ids=lambda example: f"README.md:{example.line}",
)
def test_readme_example_runs_as_written(
    example: Example, checkout: tuple[Path, dict[str, str]]
) -> None:
    folder, env = checkout
    script = f". ./env.sh\n{reduced(example.script)}\nexport -p > env.sh\n"
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_SECONDS,
        check=False,
    )
    output = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, (
        f"README.md:{example.line} failed:\n{reduced(example.script)}\n{output}"
    )
