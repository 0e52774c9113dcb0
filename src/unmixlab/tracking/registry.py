"""Promotion in the MLflow Model Registry: the best run's model becomes ``champion`` if it wins.

Each target has one registered model, ``unmixlab-<target>``; its alias ``champion`` names the
version to serve (``models:/unmixlab-vocals@champion``). Every promotion attempt records its
decision on the candidate version as tags.
"""

import math
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from unmixlab.errors import UnmixlabError
from unmixlab.tracking.schema import MODEL_URI_TAG, TARGET_TAG
from unmixlab.tracking.setup import ensure_tracking_reachable, resolve_tracking_uri

CHAMPION = "champion"
# metric-name words meaning "lower is better"
LOWER_IS_BETTER = {"loss", "error", "seconds", "latency", "rtf"}


@dataclass(frozen=True)
class Promotion:
    """The outcome of :func:`promote_best_run`."""

    model_name: str
    version: str  # the candidate's version
    promoted: bool  # the candidate is champion now
    candidate_value: float
    champion_value: float | None  # the previous champion's value, None if there was none
    decision: str


def model_name_for(target: str) -> str:
    """The registered model of ``target``."""
    return f"unmixlab-{target}"


def lower_is_better(metric: str) -> bool:
    """Infer a metric's direction from its name: losses and errors go down, scores go up."""
    return not LOWER_IS_BETTER.isdisjoint(metric.lower().replace("/", "_").split("_"))


def promote_best_run(
    experiment: str,
    metric: str,
    target: str,
    greater_is_better: bool | None = None,
) -> Promotion:
    """Register the best finished run's model and make it champion if it beats the champion.

    Args:
        experiment: MLflow experiment to pick the candidate from.
        metric: run metric to compare, e.g. ``test_sdr_vocals`` or ``best_valid_loss``.
        target: the runs' ``target`` tag; the model is registered as ``unmixlab-<target>``.
        greater_is_better: direction of ``metric``; None infers it from the name
            (``loss`` -> lower is better).

    Returns:
        The candidate's version, whether it became champion, and both metric values.

    Raises:
        UnmixlabError: no such experiment, or no finished run of ``target`` with ``metric``
            and a logged model.
    """
    if greater_is_better is None:
        greater_is_better = not lower_is_better(metric)
    uri = resolve_tracking_uri()
    ensure_tracking_reachable(uri)
    client = MlflowClient(uri)
    run = best_run(client, experiment, metric, target, greater_is_better)
    candidate_value = run.data.metrics[metric]
    name = model_name_for(target)
    version = register_run_model(client, name, run)
    client.update_model_version(
        name, version, description=f"run {run.info.run_name}: {metric} {candidate_value:.4g}"
    )  # the versions table shows what each version is, not just its number

    champion = champion_version(client, name)
    champion_value = None
    if champion is not None:
        champion_value = client.get_run(champion.run_id).data.metrics.get(metric)
    if champion is not None and champion.version == version:
        promoted, decision = False, "already champion"
    elif champion_value is None or not math.isfinite(champion_value):
        promoted = True
        decision = (
            "promoted: the first champion"
            if champion is None
            else f"promoted: champion v{champion.version} has no {metric}"
        )
    elif (
        (candidate_value > champion_value)
        if greater_is_better
        else (candidate_value < champion_value)
    ):
        promoted, decision = True, f"promoted: beats champion v{champion.version}"
    else:
        promoted, decision = False, f"kept champion v{champion.version}"
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    for key, value in {
        "promotion.decision": decision,
        "promotion.metric": metric,
        "promotion.greater_is_better": str(greater_is_better),
        "promotion.candidate_value": repr(candidate_value),
        "promotion.champion_value": repr(champion_value),
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return Promotion(name, version, promoted, candidate_value, champion_value, decision)


def best_run(
    client: MlflowClient, experiment: str, metric: str, target: str, greater_is_better: bool
) -> Run:
    """The finished run of ``target`` with the best finite ``metric`` and a logged model."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise UnmixlabError(
            f"no MLflow experiment '{experiment}' in {client.tracking_uri}",
            "Train into it first, or pass the --experiment that holds the runs",
        )
    query = f"attributes.status = 'FINISHED' and tags.{TARGET_TAG} = '{target}'"
    candidates, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], query, page_token=token)
        candidates += [
            run
            for run in page
            if math.isfinite(run.data.metrics.get(metric, math.nan))
            and MODEL_URI_TAG in run.data.tags
        ]
        token = page.token
        if not token:
            break
    if not candidates:
        raise UnmixlabError(
            f"no finished '{target}' run with metric '{metric}' and a logged model in "
            f"experiment '{experiment}'",
            "Train (and evaluate) a model first, or check the metric name",
        )
    sign = 1 if greater_is_better else -1
    return max(candidates, key=lambda run: sign * run.data.metrics[metric])


def register_run_model(client: MlflowClient, name: str, run: Run) -> str:
    """The version of ``name`` holding ``run``'s model, registered now if it is not yet."""
    try:
        client.create_registered_model(
            name,
            description="Open-Unmix separator (pyfunc); serve the 'champion' alias. Request "
            "rows: audio as (frames, channels) nested lists or a flat mono list, and "
            "sample_rate in Hz; each target comes back in the same layout.",
        )
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    run_id = run.info.run_id
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        return str(min(existing, key=lambda v: int(v.version)).version)
    model_uri = run.data.tags[MODEL_URI_TAG]
    model_id = model_uri.removeprefix("models:/")
    version = client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id)
    return str(version.version)


def champion_version(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version behind alias ``champion``, or None."""
    version = client.get_registered_model(name).aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(name, version)
