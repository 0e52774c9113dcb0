"""Runs left RUNNING by a training that was killed (``kill -9``, a lost machine).

A model folder records its target's MLflow run (``<target>.mlflow.json``). When a training
of that target starts again in the folder (it holds the folder's lock, so no other process
trains it), a recorded run that is still RUNNING belongs to a process that died: a restart
marks it KILLED, and a resume, which continues it, says so in its note.
"""

import json
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from unmixlab.tracking.names import add_to_note


def close_stale_run(client: MlflowClient, record: Path, resumed_run_id: str | None) -> str | None:
    """Mark the run recorded in ``record`` KILLED if it was left RUNNING; note why.

    Args:
        client: a client of the store the run lives in.
        record: the model folder's ``<target>.mlflow.json``.
        resumed_run_id: the run this training continues (None: a new run starts); it is
            not killed, only noted.

    Returns:
        The id of the stale run, None when there was none.
    """
    try:
        run_id = json.loads(Path(record).read_text())["mlflow_run_id"]
        run = client.get_run(run_id)
    except (OSError, ValueError, KeyError, TypeError, MlflowException):
        return None
    if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
        return None
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    why = "its training process stopped without ending the run (killed?)"
    if run_id == resumed_run_id:
        add_to_note(client, run_id, {"resumed": f"{when}, after {why}"})
        return run_id
    add_to_note(
        client,
        run_id,
        {"killed": f"{why}; a new training of {Path(record).parent} started at {when}"},
    )
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    return run_id
