"""Where a study persists: a database (SQLite, PostgreSQL) with heartbeat, or a journal file.

- ``sqlite:///path/optuna.db`` (the default, ``./optuna.db``) or ``postgresql://user@host/db``:
  :class:`optuna.storages.RDBStorage`. Every running trial writes a heartbeat; a trial whose
  worker died (no heartbeat for the grace period) is marked FAILED by the next worker that
  starts a trial, so it never blocks the study.
- anything else is a journal file path (``optuna.log``):
  :class:`~optuna.storages.journal.JournalStorage` on a
  :class:`~optuna.storages.journal.JournalFileBackend`, safe for processes on one machine
  (file lock). Optuna has no heartbeat for it: a trial of a killed worker stays RUNNING
  (and counts towards the trial cap).

``optuna-dashboard STORAGE`` shows either kind while the study runs. The URL comes from
``tune.storage``, else ``$UNMIXLAB_TUNE_STORAGE``, else ``sqlite:///./optuna.db``.
"""

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial
from pydantic import BaseModel, ConfigDict

from unmixlab.config import TrainConfig
from unmixlab.databases import require_driver
from unmixlab.errors import UnmixlabError
from unmixlab.tuning.settings import TuneConfig

SQLITE_TIMEOUT_SECONDS = 60  # workers on one SQLite file wait this long for its write lock


STORAGE_ENV = "UNMIXLAB_TUNE_STORAGE"


def default_storage_url(folder: Path) -> str:
    """The SQLite study database in ``folder``."""
    return f"sqlite:///{Path(folder).absolute() / 'optuna.db'}"


def resolve_storage_url(configured: str | None) -> str:
    """``configured`` (``tune.storage``), else ``$UNMIXLAB_TUNE_STORAGE``, else ./optuna.db.

    Keep passwords out of URLs and presets: PostgreSQL reads ``PGPASSWORD`` (or
    ``~/.pgpass``) when the URL has none, e.g. ``postgresql://optuna@db:5432/optuna``.
    """
    return configured or os.environ.get(STORAGE_ENV) or default_storage_url(Path.cwd())


def is_database(url: str) -> bool:
    """Whether ``url`` names a database (SQLAlchemy URL) rather than a journal file."""
    return "://" in url


def open_storage(
    url: str,
    heartbeat_seconds: int = 30,
    grace_seconds: int | None = None,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> BaseStorage:
    """Open the study storage named by ``url`` (a database URL or a journal file path).

    Args:
        url: ``sqlite:///...``, ``postgresql://...`` (any SQLAlchemy URL) or a file path.
        heartbeat_seconds: how often a running trial proves its worker alive (databases).
        grace_seconds: silence after which the trial is failed (default twice the heartbeat).
        on_stale: called with each trial failed for its dead worker (databases).
    """
    if not is_database(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    require_driver(url, "the Optuna storage (--storage)")
    engine_kwargs = None
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}}
    with warnings.catch_warnings():  # the heartbeat is experimental since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=grace_seconds or 2 * heartbeat_seconds,
            heartbeat_stale_trial_callback=on_stale,
        )


def public_url(url: str) -> str:
    """``url`` without its password, fit for logs, tags and messages."""
    if not is_database(url):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


SPEC_ATTR = "unmixlab"  # study user attribute holding the TuningSearch


class TuningSearch(BaseModel):
    """An Optuna search of unmixlab: what a worker needs to run its trials (stored in its study).

    Distinct from the seed study (:mod:`unmixlab.study`), which runs fixed configurations.

    Attributes:
        study_name: the Optuna study.
        experiment: MLflow experiment of the parent and trial runs.
        train: the base training configuration (data, target, fixed settings).
        tune: search space, objective, pruner, trial cap.
        trials_dir: parent of the per-trial model folders.
        parent_run_id: the study's MLflow run (None: trials are top-level runs).
        preset: the preset the study came from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_name: str
    experiment: str
    train: TrainConfig
    tune: TuneConfig
    trials_dir: Path
    parent_run_id: str | None = None
    preset: str | None = None


def storage_for(
    url: str,
    tune: TuneConfig,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> BaseStorage:
    """The storage of ``url`` with the search's heartbeat settings.

    Args:
        url: the storage URL.
        tune: the search settings (heartbeat and grace period).
        on_stale: dead-worker clean-up, called with each trial failed for lost heartbeats
            (:func:`unmixlab.tracking.trials.fail_stale_run` fails its MLflow run too).
    """
    return open_storage(url, tune.heartbeat_seconds, tune.grace_seconds, on_stale=on_stale)


def load_spec(storage_url: str, study_name: str) -> TuningSearch:
    """The spec stored in study ``study_name``.

    Raises:
        UnmixlabError: no such study, or it was not made by unmixlab.
    """
    if not is_database(storage_url) or storage_url.startswith("sqlite:///"):
        path = Path(storage_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise UnmixlabError(
                "no study storage here",
                "Check --storage (the file the study was started with)",
                path,
            )
    try:
        summaries = optuna.get_all_study_summaries(open_storage(storage_url))
    except Exception as error:
        raise UnmixlabError(
            f"cannot open the study storage {public_url(storage_url)} ({error})",
            "Check the storage URL (sqlite:///FILE, postgresql://..., or a journal file)",
        ) from error
    summary = next((s for s in summaries if s.study_name == study_name), None)
    if summary is None or SPEC_ATTR not in summary.user_attrs:
        names = ", ".join(s.study_name for s in summaries) or "none"
        raise UnmixlabError(
            f"no unmixlab study '{study_name}' in {public_url(storage_url)} (studies: {names})",
            "Start it with `unmixlab run tuning --preset NAME`, or fix --study/--storage",
        )
    return TuningSearch.model_validate(summary.user_attrs[SPEC_ATTR])
