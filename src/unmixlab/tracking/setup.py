"""Where runs are tracked: a local SQLite store by default, a tracking server when configured.

Environment:
    MLFLOW_TRACKING_URI: a tracking server (``http://host:5000``) or a database store;
        unset (and no ``mlflow.set_tracking_uri``) means ``sqlite:///<cwd>/mlflow.db``.
        A user and password written into it (``http://alice:pw@host``) are moved to
        ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (see :func:`hide_credentials`).
    UNMIXLAB_ARTIFACTS: artifact folder of experiments created in a database store
        (default ``<cwd>/mlartifacts``); a tracking server chooses its own artifact store.
"""

import fcntl
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse, urlunparse

from unmixlab.databases import require_driver
from unmixlab.errors import UnmixlabError
from unmixlab.files import reported_write_errors

if TYPE_CHECKING:
    from mlflow import MlflowClient

# stores that MLflow reaches over HTTP (everything else is opened in-process)
SERVER_SCHEMES = ("http", "https")
# experiment tag that makes MLflow's UI open an experiment on its training runs, not GenAI traces
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
HEALTH_TIMEOUT_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2.0  # a quick "is it back?" while training goes on
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def resolve_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the SQLite store ``sqlite:///<cwd>/mlflow.db``.

    A URI set in-process with ``mlflow.set_tracking_uri`` counts as set, so that this
    agrees with what MLflow's own model logging uses. Credentials in it are moved out
    first (:func:`hide_credentials`).
    """
    import mlflow

    hide_credentials()
    if mlflow.is_tracking_uri_set():
        return mlflow.get_tracking_uri()
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user part replaced by ``***``."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    host = parsed.netloc.rsplit("@", 1)[1]
    return urlunparse(parsed._replace(netloc=f"{parsed.username}:***@{host}"))


def without_credentials(uri: str) -> str:
    """``uri`` without its user part."""
    parsed = urlparse(uri)
    if "@" not in parsed.netloc:
        return uri
    return urlunparse(parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]))


def hide_credentials() -> None:
    """Move ``user:password@`` out of the tracking and registry URIs into MLflow's variables.

    Only server (HTTP) URIs. MLflow sends ``MLFLOW_TRACKING_USERNAME``/``..._PASSWORD`` as
    basic auth, so
    the server sees the same credentials, while every URI that MLflow prints ("View run"
    links, errors) and that unmixlab records holds none. Variables already set win.
    """
    for variable in URI_VARIABLES:
        uri = os.environ.get(variable, "")
        if _move_credentials(uri):
            os.environ[variable] = without_credentials(uri)
    mlflow = sys.modules.get("mlflow")  # a URI set in-process needs mlflow imported
    if mlflow is not None and mlflow.is_tracking_uri_set():
        uri = mlflow.get_tracking_uri()
        if _move_credentials(uri):
            mlflow.set_tracking_uri(without_credentials(uri))


def _move_credentials(uri: str) -> bool:
    """Put a server URI's user and password into MLflow's variables; False: nothing to move.

    Database URIs keep theirs: SQLAlchemy reads them from the URI only.
    """
    parsed = urlparse(uri)
    if parsed.scheme not in SERVER_SCHEMES or parsed.password is None:
        return False
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", parsed.username or "")
    os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", parsed.password)
    return True


def server_answers(uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """Whether the tracking server answers ``GET <uri>/health`` within ``timeout`` seconds."""
    import requests

    try:
        return requests.get(uri.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def is_server(uri: str) -> bool:
    """Whether ``uri`` names a tracking server rather than a store opened in-process."""
    return urlparse(uri).scheme in SERVER_SCHEMES


def local_artifact_root() -> Path:
    """Artifact folder for experiments created in a database store."""
    return Path(os.environ.get("UNMIXLAB_ARTIFACTS") or Path.cwd() / "mlartifacts").absolute()


def ensure_tracking_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
    """Fail fast, before any training, when the tracking store cannot be used.

    A server must answer ``GET <uri>/health`` within ``timeout`` seconds; a SQLite store
    needs an existing folder for its database file.

    Raises:
        UnmixlabError: the server does not answer, or the SQLite folder is missing; the
            message names ``uri``.
    """
    parsed = urlparse(uri)
    if parsed.scheme in SERVER_SCHEMES:
        import requests

        health = uri.rstrip("/") + "/health"
        try:
            response = requests.get(health, timeout=timeout)
        except requests.RequestException as error:
            reason = type(error).__name__
            raise UnmixlabError(
                f"MLflow tracking server {redact_uri(uri)} is not reachable ({reason})",
                "Start it (mlflow/start-server.sh) or point MLFLOW_TRACKING_URI elsewhere; "
                "unset it to track into ./mlflow.db",
            ) from error
        if response.status_code != 200:
            raise UnmixlabError(
                f"MLflow tracking server {redact_uri(uri)} answered GET /health with HTTP "
                f"{response.status_code}",
                "Check that MLFLOW_TRACKING_URI names an MLflow server and that it is healthy",
            )
    elif parsed.scheme == "sqlite":
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.parent.is_dir():
            raise UnmixlabError(
                f"folder of the MLflow SQLite store {redact_uri(uri)} does not exist",
                "Create the folder or fix MLFLOW_TRACKING_URI",
                database.parent,
            )
        create_store_once(uri, database)
    else:
        require_driver(uri, f"the MLflow tracking store {redact_uri(uri)}")


_created_stores: set[str] = set()


def create_store_once(uri: str, database: Path) -> None:
    """Create (or upgrade) the SQLite store's tables while holding a lock beside it.

    MLflow creates the tables and runs its alembic migrations when a process first opens
    a store; two first runs in a folder without ``mlflow.db`` would race there. The lock
    (``.<name>.lock`` next to the database, an ``flock``) lets one create them while the
    other waits, then finds them made.
    """
    if uri in _created_stores:
        return
    from mlflow import MlflowClient

    lock = database.with_name(f".{database.name}.lock")
    with reported_write_errors(lock), open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # the tracking tables
        client.search_registered_models(max_results=1)  # the registry's
    _created_stores.add(uri)


def get_or_create_experiment(client: "MlflowClient", name: str) -> str:
    """The id of experiment ``name``, created if missing.

    In a database store the experiment's artifacts go to :func:`local_artifact_root`; a
    server picks its own (proxied) artifact location. A new experiment is marked as model
    training (:data:`EXPERIMENT_KIND`), so that the UI opens it on its runs.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise UnmixlabError(
                f"MLflow experiment '{name}' is deleted",
                "Restore it (mlflow experiments restore) or pick another --experiment",
            )
        return experiment.experiment_id
    location = None if is_server(client.tracking_uri) else local_artifact_root().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    except MlflowException:  # created meanwhile by a parallel run
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id
