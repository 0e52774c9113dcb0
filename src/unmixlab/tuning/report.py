"""What a study found: the best trial (or the Pareto front), Optuna's plots, the parent run.

The report waits first until no trial of the study is RUNNING, so trials that workers on
other machines started finish first (:func:`wait_for_running_trials`). On a database a dead
worker's trial is failed by heartbeat, so the wait ends; a journal file has no heartbeat,
so there the wait is bounded (``tune.report_wait_seconds``, default 300 s) and the report
says when it stopped waiting with trials still running.

Plots are Optuna's plotly figures saved as HTML that loads plotly.js from its CDN (tens of kB
each instead of 4.7 MB with plotly.js inside; viewing them, in MLflow's artifact viewer or from
disk, needs that CDN); PNG copies are written too when ``kaleido`` is installed. A plot Optuna
cannot draw yet (e.g. importances before two complete trials) is skipped with a log line.
"""

import json
import logging
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from unmixlab.files import atomic_path
from unmixlab.tracking.parent_run import end_run
from unmixlab.tracking.schema import BEST_TRIAL_TAG, REPORT_NOTE_TAG
from unmixlab.tracking.trials import client, fail_stale_run
from unmixlab.tuning.settings import METRIC_NAMES, TuneConfig
from unmixlab.tuning.storage import is_database, load_spec, storage_for

logger = logging.getLogger(__name__)

JOURNAL_WAIT_SECONDS = 300  # no heartbeat there: a killed worker's trial stays RUNNING
POLL_SECONDS = 2.0  # between looks at the running trials
LOG_EVERY_SECONDS = 30.0  # between progress lines while waiting


@dataclass(frozen=True)
class TuningOutcome:
    """The state of a study after its workers stopped.

    Attributes:
        study_name: the Optuna study.
        objectives: metric names, e.g. ``("valid_loss",)`` or ``("valid_loss", "cpu_rtf")``.
        states: trial state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ...) -> count.
        best_trial: number of the best trial (single objective; lowest loss on the front
            for two), None when no trial completed.
        best_params: its hyperparameters.
        best_values: its objective values by metric name.
        pareto_front: two objectives: ``{"number", "values", "params"}`` per trial of the
            front, sorted by loss.
        waited_seconds: how long the report waited for trials running on other workers.
        note: why the report covers trials still running (it stopped waiting), else None.
    """

    study_name: str
    objectives: tuple[str, ...]
    states: dict[str, int]
    best_trial: int | None = None
    best_params: dict[str, object] = field(default_factory=dict)
    best_values: dict[str, float] = field(default_factory=dict)
    pareto_front: list[dict] = field(default_factory=list)
    waited_seconds: float = 0.0
    note: str | None = None


def report_wait_timeout(storage_url: str, tune: TuneConfig) -> float | None:
    """``tune.report_wait_seconds``, else no limit on a database, 300 s on a journal file."""
    if tune.report_wait_seconds is not None:
        return float(tune.report_wait_seconds)
    return None if is_database(storage_url) else float(JOURNAL_WAIT_SECONDS)


def wait_for_running_trials(
    study: optuna.Study,
    timeout: float | None,
    log: Callable[[str], None] = logger.info,
    poll_seconds: float = POLL_SECONDS,
) -> tuple[float, int]:
    """Wait until no trial of ``study`` is RUNNING, or ``timeout`` seconds have passed.

    Each look first fails the trials of dead workers (database storages with heartbeat:
    their stale-trial callback fails their MLflow runs too). A progress line goes to ``log``
    when the wait starts and every 30 s.

    Args:
        study: the study, loaded with the storage of :func:`unmixlab.tuning.storage.storage_for`.
        timeout: the most seconds to wait (None: until no trial runs).
        log: where progress lines go (the flow passes Prefect's run logger).
        poll_seconds: seconds between looks.

    Returns:
        Seconds waited, and the number of trials still RUNNING (0 unless timed out).
    """
    start = time.monotonic()
    logged_at = -math.inf
    while True:
        with warnings.catch_warnings():  # experimental since Optuna 2.9, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        waited = time.monotonic() - start
        if not running or (timeout is not None and waited >= timeout):
            if waited >= poll_seconds:
                left = f"{len(running)} trial(s) still running" if running else "none running"
                log(f"done waiting after {waited:.0f} s: {left}")
            return waited, len(running)
        if waited - logged_at >= LOG_EVERY_SECONDS:
            logged_at = waited
            where = ", ".join(
                f"trial {t.number} on {t.user_attrs.get('worker', 'an unknown worker')}"
                for t in running[:5]
            )
            bound = "no limit" if timeout is None else f"at most {timeout:.0f} s"
            log(
                f"waiting for {len(running)} running trial(s) of other workers before the "
                f"report: {where}; {waited:.0f} s so far, {bound}"
            )
        left = math.inf if timeout is None else timeout - waited
        time.sleep(min(poll_seconds, left))


def summarize(study: optuna.Study, tune: TuneConfig) -> TuningOutcome:
    """Count the trials by state and pick the best one (or the Pareto front)."""
    names = tuple(METRIC_NAMES[m] for m in tune.metrics)
    trials = study.get_trials(deepcopy=False)
    states = dict(Counter(t.state.name for t in trials))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return TuningOutcome(study.study_name, names, states)
    front = sorted(study.best_trials, key=lambda t: t.values[0])
    best = front[0]
    pareto = (
        [
            {
                "number": t.number,
                "values": dict(zip(names, t.values, strict=True)),
                "params": t.params,
            }
            for t in front
        ]
        if tune.multi_objective
        else []
    )
    return TuningOutcome(
        study.study_name,
        names,
        states,
        best.number,
        dict(best.params),
        dict(zip(names, best.values, strict=True)),
        pareto,
    )


def write_plots(study: optuna.Study, tune: TuneConfig, folder: Path) -> list[Path]:
    """Save Optuna's plots of ``study`` into ``folder``.

    Single objective: optimization history, parameter importances, contour, intermediate
    values. Two objectives: the Pareto front, and history, importances and contour of the
    loss.

    Returns:
        The HTML (and PNG) files written.
    """
    from optuna import visualization as vis

    folder.mkdir(parents=True, exist_ok=True)
    names = [METRIC_NAMES[m] for m in tune.metrics]
    if tune.multi_objective:
        loss = {"target": lambda t: t.values[0], "target_name": names[0]}
        plots: dict[str, Callable] = {
            "pareto_front": lambda: vis.plot_pareto_front(study, target_names=names),
            "optimization_history": lambda: vis.plot_optimization_history(study, **loss),
            "param_importances": lambda: vis.plot_param_importances(study, **loss),
            "contour": lambda: vis.plot_contour(study, **loss),
        }
    else:
        plots = {
            "optimization_history": lambda: vis.plot_optimization_history(
                study, target_name=names[0]
            ),
            "param_importances": lambda: vis.plot_param_importances(study),
            "contour": lambda: vis.plot_contour(study, target_name=names[0]),
            "intermediate_values": lambda: vis.plot_intermediate_values(study),
        }
    written = []
    for name, plot in plots.items():
        try:
            figure = plot()
        except Exception as error:  # noqa: BLE001 - a missing plot must not lose the study
            logger.warning("skipped the %s plot: %s", name, error)
            continue
        written.append(_atomic(folder / f"{name}.html", figure.write_html, include_plotlyjs="cdn"))
        if _has_kaleido():
            written.append(_atomic(folder / f"{name}.png", figure.write_image))
    return written


def write_tables(study: optuna.Study, summary: TuningOutcome, folder: Path) -> list[Path]:
    """``trials.csv`` (one row per trial) and ``summary.json`` (best trial, Pareto front)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = study.trials_dataframe(
        attrs=("number", "state", "values", "params", "duration", "user_attrs")
    )
    csv = _atomic(folder / "trials.csv", lambda path: frame.to_csv(path, index=False))
    text = json.dumps(asdict(summary), indent=2, default=str)
    summary_json = _atomic(folder / "summary.json", lambda path: Path(path).write_text(text))
    return [csv, summary_json]


def log_study(run_id: str, summary: TuningOutcome, files: list[Path]) -> None:
    """Log the study's outcome on its parent run.

    Params ``best.<name>`` (tags of the same name where a resumed run logged other values
    before), metrics ``best_<objective>`` and ``trials_<state>``, and ``files`` as
    artifacts (plots under ``plots/``, tables under ``study/``).
    """
    mlflow_client = client()
    logged = mlflow_client.get_run(run_id).data.params
    for name, value in summary.best_params.items():
        key = f"best.{name}"
        if logged.get(key, str(value)) == str(value):
            mlflow_client.log_param(run_id, key, value)
        else:
            mlflow_client.set_tag(run_id, key, str(value))
    finished = sum(n for s, n in summary.states.items() if s != "RUNNING" and s != "WAITING")
    metrics = {f"best_{k}": v for k, v in summary.best_values.items() if math.isfinite(v)}
    metrics |= {f"trials_{s.lower()}": n for s, n in summary.states.items()}
    if summary.pareto_front:
        metrics["pareto_front_size"] = len(summary.pareto_front)
    for key, value in metrics.items():
        mlflow_client.log_metric(run_id, key, float(value), step=finished)
    if summary.best_trial is not None:
        mlflow_client.set_tag(run_id, BEST_TRIAL_TAG, str(summary.best_trial))
    if summary.note:
        mlflow_client.set_tag(run_id, REPORT_NOTE_TAG, summary.note)
    elif REPORT_NOTE_TAG in mlflow_client.get_run(run_id).data.tags:  # an earlier, partial report
        mlflow_client.delete_tag(run_id, REPORT_NOTE_TAG)
    for path in files:
        where = "plots" if path.suffix in (".html", ".png") else "study"
        mlflow_client.log_artifact(run_id, str(path), where)


def finish_search(
    storage_url: str,
    study_name: str,
    folder: Path,
    log: Callable[[str], None] = logger.info,
    poll_seconds: float = POLL_SECONDS,
) -> TuningOutcome:
    """Wait for running trials, summarise the study, write its plots and tables, log them.

    The report waits first (:func:`wait_for_running_trials`, bounded by
    :func:`report_wait_timeout`); then the parent run recorded in the study gets everything
    (:func:`log_study`) and ends FINISHED.

    Args:
        storage_url: the study storage.
        study_name: the study.
        folder: where plots and tables are written.
        log: where the wait's progress lines go.
        poll_seconds: seconds between looks at the running trials.
    """
    spec = load_spec(storage_url, study_name)
    study = optuna.load_study(
        study_name=study_name, storage=storage_for(storage_url, spec.tune, fail_stale_run)
    )
    timeout = report_wait_timeout(storage_url, spec.tune)
    waited, running = wait_for_running_trials(study, timeout, log, poll_seconds)
    note = None
    if running:
        note = f"stopped waiting after {waited:.0f} s with {running} trial(s) still running"
        if not is_database(storage_url):
            note += " (a journal file has no heartbeat: a killed worker's trial stays RUNNING)"
        note += "; run the command again to update the report"
        log(note)
    summary = replace(summarize(study, spec.tune), waited_seconds=round(waited, 1), note=note)
    files = write_plots(study, spec.tune, folder / "plots")
    files += write_tables(study, summary, folder)
    if spec.parent_run_id:
        log_study(spec.parent_run_id, summary, files)
        end_run(client(), spec.parent_run_id, "FINISHED")
    return summary


def _atomic(path: Path, write: Callable, **kwargs: object) -> Path:
    """Write ``path`` through ``write(tmp_path, **kwargs)`` (:func:`unmixlab.files.atomic_path`)."""
    with atomic_path(path) as tmp:
        write(str(tmp), **kwargs)
    return path


def _has_kaleido() -> bool:
    import importlib.util

    return importlib.util.find_spec("kaleido") is not None
