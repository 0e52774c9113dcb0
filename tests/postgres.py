"""A throwaway PostgreSQL cluster for integration tests (``scripts/postgres-test-server.sh``).

The script runs ``initdb`` and ``pg_ctl`` (as the ``postgres`` system user when the tests run
as root) in a fresh folder under the system temp directory, listening on a free loopback
port, with databases ``mlflow`` and ``optuna`` owned by user ``unmixlab``, whose password
clients read from ``PGPASSWORD``.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres-test-server.sh"
NO_BINARIES = 3  # the script's exit code when PostgreSQL is not installed
USER = "unmixlab"
PASSWORD = "unmixlab-test"


def free_port() -> int:
    """A loopback TCP port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster: its folder, port and connection settings.

    Attributes:
        folder: data directory, unix socket and ``postgres.log`` live here.
        port: TCP port on 127.0.0.1.
    """

    folder: Path
    port: int

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database``, without password (libpq reads ``PGPASSWORD``)."""
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """libpq connection string of ``database`` (for ``psycopg2.connect``)."""
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database}"

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs besides the URL."""
        return {"PGPASSWORD": PASSWORD}

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        _script("stop", str(self.folder))


def start_cluster() -> PostgresCluster:
    """Initialise and start a cluster in a new temporary folder.

    Raises:
        pytest.skip.Exception: no PostgreSQL binaries on this machine.
        RuntimeError: the cluster did not start (the message holds the script's output).
    """
    folder = Path(tempfile.mkdtemp(prefix="unmixlab-pg-"))
    port = free_port()
    done = _script("start", str(folder), str(port), check=False)
    if done.returncode == NO_BINARIES:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL is not installed ({done.stderr.strip()})")
    if done.returncode != 0:
        log = folder / "postgres.log"
        tail = log.read_text()[-2000:] if log.is_file() else ""
        _script("stop", str(folder), check=False)
        raise RuntimeError(f"{SCRIPT.name} start failed:\n{done.stderr}{tail}")
    return PostgresCluster(folder, port)


def _script(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, "PGPASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{SCRIPT.name} {args[0]} failed:\n{done.stderr}")
    return done
