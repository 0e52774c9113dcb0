"""One writer per model: ``OUTPUT/<target>.lock`` names the training that writes that model.

The lock is an exclusive ``flock`` on the lock file, which holds the holder's pid, host,
command and start time. The kernel releases it when its process dies (``kill -9``
included), so a lock file left by a dead process is taken over, with a warning. A second
training of the same target into the same folder stops with one line naming the running
one, or waits for it (``--wait-for-lock``). Trainings of other targets share the folder.
"""

import contextlib
import fcntl
import functools
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unmixlab.errors import UnmixlabError
from unmixlab.files import reported_write_errors

logger = logging.getLogger(__name__)

_held: dict[str, int] = {}  # lock file -> thread holding it in this process (re-entrant)


def lock_path(output: Path, target: str) -> Path:
    """``OUTPUT/<target>.lock``."""
    return Path(output) / f"{target}.lock"


@contextmanager
def output_lock(output: Path, target: str, wait: bool = False) -> Iterator[Path]:
    """Hold the lock on ``target``'s model in ``output`` while the block runs.

    The same thread may take it again (a tracked training around its trainer).

    Args:
        output: the model folder (created if missing; removed again if still empty).
        target: the model the holder writes.
        wait: wait for the holder to finish instead of refusing.

    Yields:
        The lock file.

    Raises:
        UnmixlabError: another live training holds the lock (``wait`` False).
    """
    path = lock_path(output, target)
    key = str(path.absolute())
    if _held.get(key) == threading.get_ident():
        yield path
        return
    made_folder = not path.parent.exists()
    handle = _acquire(path, wait)
    _held[key] = threading.get_ident()
    try:
        yield path
    finally:
        del _held[key]
        path.unlink(missing_ok=True)
        os.close(handle)  # releases the flock
        if made_folder:  # a training that stopped before writing leaves no empty folder
            with contextlib.suppress(OSError):
                path.parent.rmdir()


def _acquire(path: Path, wait: bool) -> int:
    """Open and lock ``path``, record this process in it; returns the open descriptor."""
    while True:
        with reported_write_errors(path):
            # again on every try: a holder that made the folder removes it when it ends
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # removed between the two calls: try again
                continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe(read_holder(path))
            if not wait:
                os.close(handle)
                raise UnmixlabError(
                    f"another training writes this model: {holder}",
                    "Wait for it to end (or pass --wait-for-lock), stop it, or train into "
                    "another --output",
                    path,
                ) from None
            logger.warning("waiting for %s to finish (it holds %s)", holder, path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            same_file = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # its holder removed it as we locked: lock the new one
            same_file = False
        if same_file:
            break
        os.close(handle)
    stale = read_holder(path)
    if stale:
        logger.warning(
            "taking over %s from %s, which ended without releasing it", path, describe(stale)
        )
    with reported_write_errors(path):
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(holder_record()).encode(), 0)
    return handle


def holder_record() -> dict[str, Any]:
    """Who holds a lock: pid, host, command line and start time."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def read_holder(path: Path) -> dict[str, Any]:
    """The record in a lock file (empty when missing, empty or unreadable)."""
    try:
        record = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host, since ..., running `unmixlab train ...```."""
    if not holder:
        return "a process that has not recorded itself yet"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}, "
        f"running `{holder.get('command')}`"
    )


def one_writer(train_function: Callable) -> Callable:
    """Decorate ``train_function(config, ...)`` to hold its model's lock while it runs.

    ``config`` is a :class:`unmixlab.config.TrainConfig`; ``config.run.wait_for_lock``
    chooses between waiting and refusing.
    """

    @functools.wraps(train_function)
    def locked(config: Any, *args: Any, **kwargs: Any) -> Any:
        run = config.run
        with output_lock(run.output, run.target, run.wait_for_lock):
            return train_function(config, *args, **kwargs)

    return locked
