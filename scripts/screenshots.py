"""Retake docs/screenshots/: a small demo store, shot by headless Chromium.

Runs, in a work folder: the quickstart flow twice (two epoch counts: two run names, two
registered versions), a tuning of four trials, then ``mlflow ui`` and ``optuna-dashboard`` on
what they tracked, and Debian's ``chromium --headless --screenshot`` on each view.

Usage (from the repository root, after ``make setup``; ``apt-get install chromium`` first):
    .venv/bin/python scripts/screenshots.py [--work DIR] [--out docs/screenshots]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WINDOW = "1600,1000"


def run(*args: str, cwd: Path) -> None:
    """An ``unmixlab`` command in ``cwd``, its output shown."""
    print("==>", "unmixlab", *args, flush=True)
    subprocess.run([str(BIN / "unmixlab"), *args], cwd=cwd, check=True)


def serve(command: list[str], url: str, cwd: Path) -> subprocess.Popen:
    """Start a UI server and wait until ``url`` answers."""
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not answer at {url}") from None
            time.sleep(0.5)


def shoot(url: str, out: Path, window: str = WINDOW) -> None:
    """One screenshot of ``url`` (30 s of virtual time for the page's scripts to settle)."""
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--hide-scrollbars", f"--window-size={window}",
         "--virtual-time-budget=30000", f"--screenshot={out}", url],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    print("shot", out.name, "<-", url, flush=True)


def demo(work: Path) -> None:
    """What the screenshots show: two quickstart runs and a four-trial tuning."""
    for epochs in (3, 4):
        run("run", "training", "--preset", "quickstart", "--set", f"train.epochs={epochs}",
            cwd=work)  # fmt: skip
    tuning = ["--trials", "4", "--set", "tune.epochs=2", "--set", "train.epochs=3"]  # 3: the best's
    run("run", "tuning", "--preset", "tune-quickstart", *tuning, cwd=work)


def views(work: Path, out: Path) -> None:
    """Start the UIs on ``work``'s stores and take every view."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    quickstart = client.get_experiment_by_name("quickstart").experiment_id
    tuning = client.get_experiment_by_name("tune-quickstart").experiment_id
    (training, *_) = client.search_runs(
        [quickstart], "tags.target = 'vocals'", order_by=["attributes.start_time DESC"]
    )
    model = "unmixlab-vocals"
    version = max(int(v.version) for v in client.search_model_versions(f"name = '{model}'"))

    mlflow = serve(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", "sqlite:///mlflow.db",
         "--default-artifact-root", "./mlartifacts", "--host", "127.0.0.1", "--port", "5055"],
        "http://127.0.0.1:5055/health", work,
    )  # fmt: skip
    dashboard = serve(
        [str(BIN / "optuna-dashboard"), "sqlite:///optuna.db", "--host", "127.0.0.1",
         "--port", "8085"],
        "http://127.0.0.1:8085/api/studies", work,
    )  # fmt: skip
    try:
        ui, run_page = "http://127.0.0.1:5055/#", f"runs/{training.info.run_id}"
        shoot(f"{ui}/experiments/{tuning}/runs", out / "mlflow-runs.png")
        shoot(f"{ui}/experiments/{quickstart}/{run_page}", out / "mlflow-run.png")
        listen = "artifactPath/evaluation/listen/index.html"
        shoot(f"{ui}/experiments/{quickstart}/{run_page}/{listen}", out / "mlflow-listening.png")
        shoot(f"{ui}/models/{model}/versions/{version}", out / "mlflow-registry.png")
        shoot("http://127.0.0.1:8085/dashboard/studies/1", out / "optuna-dashboard.png")
        shoot(
            "http://127.0.0.1:8085/dashboard/studies/1/trials?numbers=0",
            out / "optuna-dashboard-trial.png",
        )
    finally:
        for server in (mlflow, dashboard):
            server.terminate()
            server.wait(timeout=30)
    plot = Path(client.download_artifacts(training.info.run_id, "plots/loss_curves.png", str(work)))
    shutil.copyfile(plot, out / "loss-curves.png")


def main() -> None:
    """Make the demo store (unless ``--work`` has one), then take every view."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="the demo's folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        raise SystemExit("no `chromium` on PATH: install it (Debian: apt-get install chromium)")
    work = args.work or Path(tempfile.mkdtemp(prefix="unmixlab-screens-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "mlflow.db").exists():
        demo(work)
    views(work, args.out.resolve())


if __name__ == "__main__":
    main()
