"""What the tasks share: their logger, and when a failed task is worth another attempt.

Tasks that talk to MLflow or S3 retry with exponential back-off when the failure is
transient (a tracking server or object store that refuses a connection or times out, a
SQLite store that is locked). Bad input (:class:`unmixlab.errors.UnmixlabError` not caused
by such a failure) fails at once: another attempt would fail the same way.
"""

import logging

from prefect import get_run_logger
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import MissingContextError
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

RETRIES = 4
RETRY_DELAY_SECONDS = exponential_backoff(backoff_factor=2)  # 2, 4, 8, 16 s
RETRY_JITTER_FACTOR = 0.2


def transient_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the server or store was unreachable just then"."""
    import botocore.exceptions
    import requests

    return (
        ConnectionError,  # the built-in one: refused, reset, aborted
        TimeoutError,
        requests.ConnectionError,
        requests.Timeout,
        botocore.exceptions.ConnectionError,  # endpoint unreachable, connection closed
        botocore.exceptions.HTTPClientError,  # read timeouts, dropped connections
    )


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` or anything in its cause chain is a connectivity failure."""
    kinds = transient_types()
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, kinds):
            return True
        if "database is locked" in str(error):  # sqlite's, as SQLAlchemy and MLflow wrap it
            return True
        error = error.__cause__ or error.__context__
    return False


def retry_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect ``retry_condition_fn``: retry connectivity failures only."""
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - deciding on the failure is the point
        return is_transient(error)
    return False


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, else the ``unmixlab`` logger (``.fn``)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("unmixlab")


def retry_transient() -> dict:
    """``@task`` options of a task that talks to MLflow or S3: retried on transient failures.

    Not cached: such a task records something, so running it again must record again.
    """
    from prefect.cache_policies import NO_CACHE

    return {
        "cache_policy": NO_CACHE,
        "retries": RETRIES,
        "retry_delay_seconds": RETRY_DELAY_SECONDS,
        "retry_jitter_factor": RETRY_JITTER_FACTOR,
        "retry_condition_fn": retry_if_transient,
    }
