"""Stopping a command: SIGINT (Ctrl-C) and SIGTERM (``kill``, a stopped job) stop it in seconds.

Both raise :class:`KeyboardInterrupt` in the main thread at the next Python step, so training
stops at the next batch and its MLflow run ends KILLED. (Inside a flow run Prefect raises its
own ``TerminationSignal`` on SIGTERM, which the same clean-up handles, then re-sends SIGTERM
to this handler.) SIGINT gets Python's handler back even when the command started with it
ignored (``cmd &`` in a script, some job runners). Worker processes are interrupted by the
code that started them (museval scoring, tuning workers), since ``kill PID`` reaches only
the command.
"""

import signal


def interrupt(signum: int, frame: object) -> None:
    """Signal handler: raise :class:`KeyboardInterrupt` naming the signal."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise :class:`KeyboardInterrupt` in this process."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
