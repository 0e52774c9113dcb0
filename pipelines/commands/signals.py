"""Stopping a command: SIGINT (Ctrl-C) and SIGTERM (``kill``, a stopped job) stop it in seconds.

Both raise :class:`KeyboardInterrupt` in the main thread at the next Python step, so training
stops at the next batch and its MLflow run ends KILLED. (Inside a flow run Prefect raises its
own ``TerminationSignal`` on SIGTERM, which the same clean-up handles, then re-sends SIGTERM
to this handler.) SIGINT gets Python's handler back even when the command started with it
ignored (``cmd &`` in a script, some job runners). Worker processes are interrupted by the
code that started them (museval scoring, tuning workers), since ``kill PID`` reaches only
the command.
"""

import contextlib
import signal
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM raise :class:`KeyboardInterrupt`; then as before.

    Only the first signal raises: the clean-up it starts (runs marked KILLED, the flow run
    reported, the temporary server stopped) is not itself interrupted by the SIGTERM that
    Prefect re-sends, or by a second Ctrl-C. ``kill -9`` still stops the command at once.
    """
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        if received:
            return  # already stopping
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, interrupt) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
