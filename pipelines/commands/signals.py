"""Stopping a command: SIGINT (Ctrl-C) and SIGTERM (``kill``, a stopped job) stop it in seconds.

Both raise :class:`KeyboardInterrupt` in the main thread at the next Python step, so training
stops at the next batch, its MLflow run ends KILLED and a Prefect flow run ends Crashed.
SIGINT gets Python's handler back even when the command started with it ignored (``cmd &``
in a script, some job runners).

Ctrl-C in a terminal reaches every process of the job; ``kill PID`` or a job runner's
SIGTERM reaches only the command. So a moment later the command passes SIGINT on to its
child processes that are still running (museval scorers, tuning workers, data loaders) and
did not leave its session (the temporary Prefect server did: the command stops it last).
"""

import os
import signal
import threading

import psutil

FORWARD_AFTER_SECONDS = 2.0  # children that got the terminal's Ctrl-C are gone by then


def interrupt(signum: int, frame: object) -> None:
    """Signal handler: raise :class:`KeyboardInterrupt`; interrupt the children shortly after."""
    timer = threading.Timer(FORWARD_AFTER_SECONDS, interrupt_children)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupt_children() -> None:
    """Send SIGINT to this process's descendants that share its session."""
    session = os.getsid(0)
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getsid(child.pid) == session:
                child.send_signal(signal.SIGINT)
        except (OSError, psutil.Error):  # exited meanwhile
            pass


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise :class:`KeyboardInterrupt` in this process."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
