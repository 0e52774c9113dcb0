"""A temporary Prefect server for one ``unmixlab run`` command, which never outlives it.

Without ``PREFECT_API_URL``, Prefect would start its own temporary server as a plain child
process: Ctrl-C in a terminal reaches that child too, so it dies before the command can mark
its flow run Crashed (the command then retries the dead server), and after ``kill -9`` of the
command it is orphaned and keeps its port. This server instead:

- runs in its own session, so the terminal's Ctrl-C reaches only the command, which reports
  the interrupted flow run to a server that is still up, then stops it;
- reads its standard input, a pipe from the command: when the command dies in any way the
  pipe closes, and the server shuts down (hard after twice :data:`SHUTDOWN_SECONDS`).

It serves Prefect's API app without the UI, on the same database as Prefect's own temporary
server (``PREFECT_HOME``), so past runs show in ``prefect server start`` later.
"""

import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import click
import httpx

from unmixlab.errors import UnmixlabError

STARTUP_SECONDS = 120.0  # first start migrates the database: slow on a busy 2-core machine
SHUTDOWN_SECONDS = 5.0  # after this the server exits even with requests in flight
# what Prefect's own temporary server sets: API only, no UI, ephemeral services
SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry (and no internet to send it)
}


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API of this command: ``PREFECT_API_URL`` if set, else a temporary server.

    Yields:
        The API URL; inside the block (and in child processes) Prefect uses it.

    Raises:
        UnmixlabError: the temporary server did not answer within :data:`STARTUP_SECONDS`.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server = start_server(port)
    try:
        click.echo(f"temporary Prefect server on {url} (PREFECT_API_URL: use yours)", err=True)
        wait_until_healthy(url, server)
        with use_api(url):
            yield url
    finally:
        stop(server)


def start_server(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The temporary server (:func:`serve`) on loopback ``port``, its environment ``env``.

    It stops when its standard input closes (:func:`stop`); ``env`` defaults to this process's.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.prefect_server", str(port)],
        stdin=subprocess.PIPE,
        env={**(os.environ if env is None else env), **SERVER_ENV},
        start_new_session=True,  # the terminal's Ctrl-C is for the command, not the server
    )


def wait_until_healthy(url: str, server: subprocess.Popen) -> None:
    """Poll ``url/health`` until it answers 200.

    Raises:
        UnmixlabError: the server exited, or did not answer in time.
    """
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UnmixlabError(
                f"the temporary Prefect server exited with code {server.returncode}",
                "Read its error above, or point PREFECT_API_URL at a running server",
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise UnmixlabError(
        f"the temporary Prefect server did not answer on {url} within {STARTUP_SECONDS:.0f} s",
        "Retry on a less busy machine, or point PREFECT_API_URL at a running server",
    )


@contextlib.contextmanager
def use_api(url: str) -> Iterator[None]:
    """Point Prefect at ``url`` here, in its threads and in child processes.

    The environment reaches child processes; Prefect's process-global settings reach threads
    that start without this context (the process pool's message forwarder would otherwise
    start an ephemeral server of its own, left running). Pending logs are sent on the way out.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield
            finally:
                drain_prefect_workers()
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        refresh_global_settings_context()


def drain_prefect_workers() -> None:
    """Send the logs and events Prefect still holds, so that nothing retries a stopped server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.drain_all(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


def stop(server: subprocess.Popen) -> None:
    """Close the server's pipe (it shuts down), then make sure it is gone."""
    with contextlib.suppress(OSError):
        server.stdin.close()
    try:
        server.wait(timeout=SHUTDOWN_SECONDS + 5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def serve(port: int) -> None:
    """Serve Prefect's API on loopback ``port`` until standard input closes (child process)."""
    import uvicorn
    from prefect.server.api.server import create_app

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            if sig != signal.SIGINT:  # Ctrl-C is for the command, which stops this server
                super().handle_exit(sig, frame)

    config = uvicorn.Config(
        create_app(ephemeral=True, final=True),
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    server = Server(config)

    def stop_when_the_command_is_gone() -> None:
        while os.read(sys.stdin.fileno(), 4096):  # b"" at EOF: the command ended or died
            pass
        server.should_exit = True  # uvicorn's graceful shutdown
        time.sleep(2 * SHUTDOWN_SECONDS)
        os._exit(0)  # the shutdown itself hung: stop anyway

    threading.Thread(target=stop_when_the_command_is_gone, daemon=True).start()
    server.run()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
