"""Addresses in the MLflow UI (run pages, artifact downloads), built from where the UI really is.

Environment:
    MLFLOW_UI_URL: the UI's address when it is not the tracking URI itself (a proxy, another
        host or port, or where you run ``mlflow ui`` for a local store). Unset: a tracking
        server's own address, else ``http://127.0.0.1:5000`` (``mlflow ui``'s default).
"""

import os
from urllib.parse import quote, urlparse, urlunparse

from unmixlab.tracking.registry import lower_is_better
from unmixlab.tracking.setup import is_server

UI_URL_ENV = "MLFLOW_UI_URL"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def ui_base(tracking_uri: str) -> str:
    """The MLflow UI's base address, without credentials or a trailing slash."""
    base = os.environ.get(UI_URL_ENV) or (tracking_uri if is_server(tracking_uri) else LOCAL_UI)
    parsed = urlparse(base.rstrip("/"))
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urlunparse(parsed._replace(netloc=netloc))  # user:password@ never reaches a link


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The UI page of a run."""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def runs_table_url(
    tracking_uri: str, experiment_id: str, metric: str, greater_is_better: bool | None = None
) -> str:
    """The experiment's runs table with the best run by ``metric`` on top.

    MLflow keeps the table's columns per browser, never per experiment; the sort order is an
    address parameter it honours.
    """
    if greater_is_better is None:
        greater_is_better = not lower_is_better(metric)
    order = f"orderByKey={quote(f'metrics.`{metric}`', safe='')}"
    return (
        f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs"
        f"?{order}&orderByAsc={str(not greater_is_better).lower()}"
    )


def artifact_url(tracking_uri: str, run_id: str, path: str) -> str:
    """A download address of one run artifact (what the UI itself fetches)."""
    return f"{ui_base(tracking_uri)}/get-artifact?path={quote(path, safe='')}&run_uuid={run_id}"
