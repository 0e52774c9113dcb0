"""Atomic file writes: a file appears whole under its name, or not at all.

Every writer goes to a temporary folder inside the target's folder (same file system, so the
rename is atomic) and writes the file there under its final name (so that formats which
record their file's name, as ``torch.save`` does inside its zip, give the same bytes every
time); the file is then renamed onto the target. On any failure, interrupts included, the
temporary folder is removed and the target keeps its earlier content (or stays absent).
:func:`staged_files` puts several files in place together (a model folder). A full disk or
a read-only folder becomes one :class:`~unmixlab.errors.UnmixlabError` naming the file.
"""

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from unmixlab.errors import UnmixlabError

# errno -> what the user is told (the problem, and the fix)
WRITE_ERRORS = {
    errno.ENOSPC: ("disk full", "Free some space there, or write to another folder"),
    errno.EDQUOT: ("disk full (quota exceeded)", "Free some space, or write elsewhere"),
    errno.EFBIG: ("disk full (file size limit reached)", "Write to another file system"),
    errno.EROFS: ("read-only file system", "Write to a writable folder"),
    errno.EACCES: ("read-only: permission denied", "Write to a folder you may write to"),
    errno.EPERM: ("read-only: operation not permitted", "Write to a folder you may write to"),
}
FULL_DISK_BYTES = 1 << 16  # a file system with less room than this left counts as full


def write_error(error: BaseException, path: Path) -> UnmixlabError | None:
    """The one-line error for a write to ``path`` that failed with ``error``; None: another cause.

    Writers that do not pass the ``OSError`` on (``torch.save`` raises ``RuntimeError: file
    write failed``) count as "disk full" when the file system has (almost) no room left.
    """
    code = getattr(error, "errno", None)
    if code is None:  # torch, soundfile: look at the file system
        code = errno.ENOSPC if _free_bytes(Path(path).parent) < FULL_DISK_BYTES else None
    if code not in WRITE_ERRORS:
        return None
    problem, fix = WRITE_ERRORS[code]
    return UnmixlabError(f"cannot write: {problem}", fix, path)


def _free_bytes(folder: Path) -> float:
    """Bytes left to an unprivileged writer in the file system of ``folder`` (inf: unknown)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return float("inf")
    return stats.f_bavail * stats.f_frsize


@contextmanager
def reported_write_errors(path: Path) -> Iterator[None]:
    """Turn a full disk or a read-only folder while the block writes ``path`` into one line."""
    try:
        yield
    except UnmixlabError:
        raise
    except Exception as error:
        reported = write_error(error, path)
        if reported is None:
            raise
        raise reported from error


def _make_private_folder(parent: Path, name: str) -> Path:
    """A new hidden temporary folder in ``parent`` (created with its parents)."""
    with reported_write_errors(parent / name):
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))


def _put_in_place(tmp: Path, path: Path) -> None:
    """Give ``tmp`` its folder's read/write bits (not mkstemp's private ones); rename it."""
    os.chmod(tmp, stat.S_IMODE(path.parent.stat().st_mode) & 0o666)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path with ``path``'s name; rename it onto ``path`` when the block ends.

    The caller writes the temporary path by any means (``torch.save``, ``soundfile``,
    plotly's ``write_html``). Missing parent folders are created.

    Args:
        path: the file to (re)write.

    Yields:
        A path with the same name as ``path`` in a new hidden folder beside it.

    Raises:
        UnmixlabError: the disk is full or the folder read-only (naming ``path``).
    """
    path = Path(path)
    folder = _make_private_folder(path.parent, path.name)
    try:
        with reported_write_errors(path):
            tmp = folder / path.name
            tmp.touch()
            yield tmp
            _put_in_place(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """Yield a hidden staging folder; its files are moved into ``folder`` together at the end.

    Write every file of a set (a model's weights, its JSON, ``separator.json``) into the
    staging folder under its final name: only when all were written are they renamed into
    ``folder``, so a full disk leaves the earlier set whole instead of a mix.

    Raises:
        UnmixlabError: the disk is full or the folder read-only (naming the final file).
    """
    folder = Path(folder)
    stage = _make_private_folder(folder, "staged")
    try:
        try:
            yield stage
        except UnmixlabError as error:  # name the file the user knows, not the staged one
            if error.path is None or error.path.parent != stage:
                raise
            raise UnmixlabError(error.problem, error.fix, folder / error.path.name) from error
        except Exception as error:
            staged = Path(getattr(error, "filename", None) or stage)
            reported = write_error(error, folder / staged.name if staged != stage else folder)
            if reported is None:
                raise
            raise reported from error
        with reported_write_errors(folder):
            for staged in sorted(stage.iterdir()):
                _put_in_place(staged, folder / staged.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
