"""Atomic file writes: a file appears whole under its name, or not at all.

Every writer goes to a temporary file in the target's folder (same file system, so the
rename is atomic), then renames it over the target; on any failure, interrupts included,
the temporary file is removed and the target keeps its earlier content (or stays absent).
"""

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block ends.

    The caller writes the temporary path by any means (``torch.save``, ``soundfile``,
    plotly's ``write_html``). Missing parent folders are created.

    Args:
        path: the file to (re)write.

    Yields:
        The temporary file, empty, with the same suffix as ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private; it gets its folder's read/write bits instead
        os.chmod(tmp, stat.S_IMODE(path.parent.stat().st_mode) & 0o666)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


LATEST = "latest"  # the link to the newest finished run in a flow's output folder


def link_latest(run_dir: Path) -> Path:
    """Point ``<output>/latest`` at ``run_dir`` (a relative symlink), atomically.

    A reader sees the previous run or the new one, never a missing link.

    Args:
        run_dir: a finished run's folder, ``<output>/<time>-<name>``.

    Returns:
        The link, ``<output>/latest``.
    """
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run_dir.name, tmp, target_is_directory=True)
    try:
        os.replace(tmp, link)
    finally:
        tmp.unlink(missing_ok=True)
    return link
