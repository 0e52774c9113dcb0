"""Create or resume a search (an Optuna study) in its storage; run its trials on workers.

The study stores what its workers need (:class:`~unmixlab.tuning.storage.TuningSearch`: base
training settings, tune settings, MLflow experiment and parent run) as a user attribute, so
any worker that can reach the storage and the data joins it with just the storage URL and
the study name: processes started here (:func:`run_workers`) or ``unmixlab tune worker`` on
other machines.

The trial cap (``tune.trials``) is global and counts finished trials: complete and pruned
ones, and those running (on other workers); a failed or interrupted trial does not count, so
an interrupted study resumed with the same cap runs the missing trials (the interrupted ones
first, queued again with their parameters), and a larger cap extends a finished study.
Workers started together by :func:`run_workers` split the remaining trials between them and
never exceed the cap; independent workers stop through
:class:`optuna.study.MaxTrialsCallback`, which can overshoot by one trial per extra worker
when several finish at the same instant.
"""

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import torch
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from unmixlab.config import TrainConfig
from unmixlab.device import spread_devices, visible_gpu_count
from unmixlab.errors import UnmixlabError
from unmixlab.progress import tqdm
from unmixlab.tracking.parent_run import ParentRun
from unmixlab.tracking.trials import fail_stale_run, run_status
from unmixlab.tuning.objective import INTERRUPTED_ATTR, Objective, requeue
from unmixlab.tuning.settings import METRIC_NAMES, FloatRange, TuneConfig
from unmixlab.tuning.storage import (
    SPEC_ATTR,
    TuningSearch,
    load_spec,
    open_storage,
    public_url,
    storage_for,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials N asks for
COUNTED = (*FINISHED, TrialState.RUNNING)  # what the trial cap counts
INTERRUPT_GRACE_SECONDS = 2.0  # workers that got the Ctrl-C themselves stop within this
STOP_SECONDS = 10.0  # an interrupted worker marks its trial in this time, or is killed


class _QuietInterrupt(logging.Filter):
    """Drops Optuna's "trial failed" warnings and traceback for an interrupt (said once, above).

    Optuna logs an interrupted trial as failed twice: with the traceback, then "failed with
    value None"; both go.
    """

    def __init__(self) -> None:
        """No interrupted trial seen yet."""
        super().__init__()
        self.interrupted: set[str] = set()  # "Trial N" of the interrupted trials

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but those about an interrupted trial."""
        message = record.getMessage()
        trial = " ".join(message.split()[:2])  # "Trial 7"
        interrupt = record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt)
        if interrupt or "KeyboardInterrupt" in message:
            self.interrupted.add(trial)
            return False
        return not (trial in self.interrupted and message.endswith("failed with value None."))


def _quiet_interrupts() -> None:
    """Install :class:`_QuietInterrupt` on Optuna's optimisation logger (once)."""
    optimize_logger = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietInterrupt) for f in optimize_logger.filters):
        optimize_logger.addFilter(_QuietInterrupt())


def directions(tune: TuneConfig) -> list[str]:
    """Every objective component (loss, seconds per epoch, RTF) is minimised."""
    return ["minimize"] * len(tune.metrics)


def create_study(spec: TuningSearch, storage_url: str) -> optuna.Study:
    """Create the study, or load it when it exists (``load_if_exists``), and store ``spec``.

    A new study gets the ``tune.enqueue`` configurations queued first.

    Raises:
        UnmixlabError: the stored study optimises other objectives.
    """
    storage = storage_for(storage_url, spec.tune, fail_stale_run)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=spec.study_name,
            directions=directions(spec.tune),
            load_if_exists=True,
        )
    except ValueError as error:
        raise UnmixlabError(
            f"study '{spec.study_name}' in {public_url(storage_url)} exists with other "
            f"objectives ({error})",
            "Keep its tune.objective, or pick another tune.study_name",
        ) from error
    if len(study.directions) != len(spec.tune.metrics):
        raise UnmixlabError(
            f"study '{spec.study_name}' in {public_url(storage_url)} has "
            f"{len(study.directions)} objective(s), tune.objective '{spec.tune.objective}' "
            f"{len(spec.tune.metrics)}",
            "Keep its tune.objective, or pick another tune.study_name",
        )
    if not study.trials:
        for params in spec.tune.enqueue:
            study.enqueue_trial(params, user_attrs={"enqueued": True})
    with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([METRIC_NAMES[m] for m in spec.tune.metrics])
    study.set_user_attr(SPEC_ATTR, spec.model_dump(mode="json"))
    for key, value in readable_settings(spec).items():
        study.set_user_attr(key, value)
    return study


def readable_settings(spec: TuningSearch) -> dict[str, str]:
    """The study's settings one per line, as optuna-dashboard lists user attributes.

    ``unmixlab`` (the whole :class:`TuningSearch`, what workers read) stays one JSON value; these
    say the same for a person.
    """
    tune = spec.tune
    train = spec.train.flat()
    settings = {
        "preset": spec.preset or "",
        "target": train["target"],
        "objective": ", ".join(f"{METRIC_NAMES[m]} (minimised)" for m in tune.metrics),
        "epochs per trial": str(tune.epochs or train["epochs"]),
        "pruner": tune.pruner if not tune.multi_objective else "none (two objectives)",
        "trial cap": str(tune.trials),
        "data": str(train["root"]),
        "mlflow experiment": spec.experiment,
        "mlflow parent run": spec.parent_run_id or "",
    }
    for name, dimension in tune.space.items():
        values = (
            f"{dimension.low:g} to {dimension.high:g}{' (log)' if dimension.log else ''}"
            if isinstance(dimension, FloatRange)
            else ", ".join(str(v) for v in dimension)
        )
        settings[f"space: {name}"] = values
    return settings


def start_search(
    train: TrainConfig,
    tune: TuneConfig,
    *,
    study_name: str,
    experiment: str,
    storage_url: str,
    trials_dir: Path,
    preset: str | None = None,
    tags: dict[str, str] | None = None,
) -> TuningSearch:
    """Open the study's parent MLflow run and create (or resume) the study in its storage.

    A resumed study keeps its parent run when that run exists in the current tracking store,
    so all its trials nest under one run however often it was interrupted.

    Args:
        train: the base training configuration.
        tune: the study settings.
        study_name: the Optuna study.
        experiment: MLflow experiment of the parent and trial runs.
        storage_url: the study storage.
        trials_dir: parent of the per-trial model folders.
        preset: the preset the study came from.
        tags: more tags of a new parent run (``dataset_fingerprint``, its description).

    Returns:
        The spec stored in the study, with the parent run id.
    """
    try:
        earlier = load_spec(storage_url, study_name).parent_run_id
    except UnmixlabError:
        earlier = None
    public = public_url(storage_url)
    parent_run_id = ParentRun.start(
        experiment,
        run_name=study_name,
        tags={
            "optuna.study": study_name,
            "optuna.storage": public,
            "optuna.objective": tune.objective,
            "preset": preset or "",
            **(tags or {}),
        },
        settings=tune.model_dump(mode="json") | {"storage": public},
        prefix="tune.",
        resume_run=earlier,
    ).run_id
    spec = TuningSearch(
        study_name=study_name,
        experiment=experiment,
        train=train,
        tune=tune.model_copy(update={"storage": public}),
        trials_dir=Path(trials_dir).absolute(),
        parent_run_id=parent_run_id,
        preset=preset,
    )
    create_study(spec, storage_url)
    return spec


def finished_before(storage_url: str, study_name: str) -> bool:
    """Whether the study's parent run ended FINISHED (an interrupted extension keeps that)."""
    try:
        run_id = load_spec(storage_url, study_name).parent_run_id
        return bool(run_id) and run_status(run_id) == "FINISHED"
    except Exception:  # noqa: BLE001 - no study, no run, another store: nothing finished
        return False


def wait_for_study(storage_url: str, study_name: str, seconds: float) -> TuningSearch:
    """:func:`load_spec`, retried for up to ``seconds`` while the study is not created yet.

    Lets workers start before (or together with) the flow that creates the study.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            return load_spec(storage_url, study_name)
        except UnmixlabError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))


def remaining_trials(study: optuna.Study, cap: int) -> int:
    """Trials still to start before the study holds ``cap`` finished (or running) trials."""
    return max(cap - len(study.get_trials(deepcopy=False, states=COUNTED)), 0)


def run_worker(
    storage_url: str,
    study_name: str,
    n_trials: int | None = None,
    worker_index: int | None = None,
    cap: int | None = None,
    threads: int | None = None,
    progress: bool = False,
    device: str | None = None,
) -> int:
    """Run trials of a stored study in this process until its trial cap is reached.

    Args:
        storage_url: the study storage.
        study_name: the study (its :class:`TuningSearch` says what to train).
        n_trials: at most this many trials here (None: until the cap).
        worker_index: seeds the sampler with ``tune.seed + worker_index`` (None: unseeded,
            for workers started independently).
        cap: override of ``tune.trials``, the study-wide trial cap.
        threads: torch intra-op threads of this process (None: torch's default).
        progress: show a bar over this worker's trials (state and value of the last).
        device: where this worker's trials train (None: the study's ``train.device``).

    Returns:
        The number of trials this worker ran (finished, whatever their outcome), not
        counting those that other workers ran meanwhile.
    """
    spec = load_spec(storage_url, study_name)
    base = spec.train if device is None else spec.train.updated(device=device)
    tune = spec.tune
    cap = cap or tune.trials
    if threads is not None:
        torch.set_num_threads(threads)
    storage = storage_for(storage_url, tune, fail_stale_run)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=make_sampler(None if worker_index is None else tune.seed + worker_index),
        pruner=make_pruner(tune, base),
    )
    with warnings.catch_warnings():  # experimental since Optuna 2.9, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # before counting what is left
    todo = remaining_trials(study, cap)
    if n_trials is not None:
        todo = min(todo, n_trials)
    if todo == 0:
        return 0
    objective = Objective(
        base, tune, spec.experiment, spec.trials_dir, spec.parent_run_id, spec.preset
    )
    ran: list[int] = []  # this call's trials, not those other workers start meanwhile
    done = len(study.get_trials(deepcopy=False, states=FINISHED))  # "trial 6 of 7", time left
    bar = tqdm(
        total=done + todo,
        initial=done,
        desc=f"study {study_name}",
        unit="trial",
        disable=not progress,
    )
    _quiet_interrupts()

    def count(study: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial.number)
        value = "" if trial.values is None else " " + ", ".join(f"{v:.4g}" for v in trial.values)
        bar.set_postfix_str(f"trial {trial.number} {trial.state.name.lower()}{value}")
        bar.update()

    with bar, _no_trial_left_running(study, storage):
        study.optimize(
            objective,
            n_trials=todo,
            callbacks=[optuna.study.MaxTrialsCallback(cap, states=COUNTED), count],
            catch=(Exception,),
            gc_after_trial=True,
        )
    return len(ran)


@contextmanager
def _no_trial_left_running(study: optuna.Study, storage: BaseStorage) -> Iterator[None]:
    """On an interrupt, fail as interrupted the trials this process asked for but never began.

    Ctrl-C between Optuna's ``ask`` and the objective leaves a RUNNING trial without a
    heartbeat: no worker would ever fail it, and every later report would wait for it. An
    enqueued trial's parameters are queued again, as the objective does for its own.
    """
    asked: list[int] = []
    ask = study.ask

    def ask_and_note(*args, **kwargs) -> optuna.Trial:
        trial = ask(*args, **kwargs)
        asked.append(trial._trial_id)
        return trial

    study.ask = ask_and_note  # Optuna's optimize loop asks through the study object
    try:
        yield
    except KeyboardInterrupt:
        for trial_id in asked:
            trial = storage.get_trial(trial_id)
            if trial.state == TrialState.RUNNING:
                storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, True)
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
                if "fixed_params" in trial.system_attrs:
                    requeue(study, trial.system_attrs["fixed_params"], trial.number)
        raise
    finally:
        del study.ask


def run_workers(storage_url: str, study_name: str, workers: int, cap: int | None = None) -> None:
    """Run the study's missing trials on ``workers`` processes (in this one when 1).

    The remaining trials are split between the workers, so together they never exceed the
    cap; the CPU cores are split too (torch threads per worker), and with ``train.device``
    ``auto`` the workers are spread round-robin over the visible GPUs (``cuda:0``,
    ``cuda:1``, ...). A progress bar follows the study's finished trials.

    Raises:
        UnmixlabError: a worker process failed (the message gives its exit code).
    """
    if workers == 1:
        run_worker(storage_url, study_name, worker_index=0, cap=cap, progress=True)
        return
    spec = load_spec(storage_url, study_name)
    cap = cap or spec.tune.trials
    storage = open_storage(storage_url)
    todo = remaining_trials(optuna.load_study(study_name=study_name, storage=storage), cap)
    shares = [todo // workers + (i < todo % workers) for i in range(workers)]
    threads = max(1, (os.cpu_count() or 1) // workers)
    devices = worker_devices(spec.train.run.device, workers, visible_gpu_count())
    context = multiprocessing.get_context("spawn")  # no forked torch/MLflow state
    processes = [
        context.Process(
            target=_worker_process,
            args=(storage_url, study_name, share, index, cap, threads),
            kwargs={"device": devices[index]},
            name=f"tuning-worker-{index}",
        )
        for index, share in enumerate(shares)
        if share
    ]
    for process in processes:
        process.start()
    try:
        _follow(storage_url, study_name, cap, processes)
    except BaseException:  # Ctrl-C, SIGTERM: the workers stop too, their trials KILLED
        _interrupt(processes)
        raise
    finally:
        for process in processes:
            process.join()
    failed = [f"{p.name} (exit code {p.exitcode})" for p in processes if p.exitcode]
    if failed:
        raise UnmixlabError(
            f"tuning worker(s) stopped: {', '.join(failed)}",
            "Read the worker's error above; the study resumes when started again",
        )


def worker_devices(device: str, workers: int, nb_gpus: int) -> list[str | None]:
    """Each worker's device: ``auto`` spreads them over ``nb_gpus`` GPUs, else all on ``device``.

    None keeps the study's setting (no GPU to spread over, or an explicit device).
    """
    if device != "auto" or nb_gpus == 0:
        return [None] * workers
    return list(spread_devices(workers, nb_gpus))


def make_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE (single or multi-objective); running trials count as bad guesses for parallel peers."""
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(tune: TuneConfig, base: TrainConfig) -> optuna.pruners.BasePruner:
    """The median pruner, Hyperband over the epoch budget, or none (so for two objectives)."""
    if tune.multi_objective or tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1,
            max_resource=tune.epochs or base.run.epochs,
            reduction_factor=tune.reduction_factor,
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.startup_trials, n_warmup_steps=tune.warmup_epochs
    )


def _follow(
    storage_url: str, study_name: str, cap: int, processes: list[multiprocessing.Process]
) -> None:
    """Show the study's finished trials until every worker exited."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    with tqdm(total=cap, initial=done, desc=f"study {study_name}", unit="trial") as bar:
        while any(p.is_alive() for p in processes):
            time.sleep(1.0)
            bar.n = len(study.get_trials(deepcopy=False, states=FINISHED))
            bar.refresh()


def _worker_process(*args: object, **kwargs: object) -> None:
    """Process target: :func:`run_worker`; interrupted, exit without the interpreter's teardown.

    The interrupted trial is already marked (Optuna FAIL, MLflow KILLED) when the interrupt
    arrives here; the teardown of a process whose torch operation was interrupted can hang in
    garbage collection, so the process ends at once. Its progress bars take a thread lock, so
    no process-shared semaphore is left behind ("leaked semaphore"), and a Ctrl-C that lands
    in a garbage-collection callback is not printed: it is lost there, and
    :func:`_interrupt` sends the worker another.
    """
    tqdm.set_lock(threading.RLock())
    sys.unraisablehook = _quiet_unraisable_interrupt
    try:
        run_worker(*args, **kwargs)
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def _quiet_unraisable_interrupt(unraisable: "sys.UnraisableHookArgs") -> None:
    """Python's hook for errors it cannot raise, silent for a :class:`KeyboardInterrupt`."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _interrupt(processes: list[multiprocessing.Process]) -> None:
    """Interrupt the workers (SIGINT) unless they stopped already; kill what is left."""
    deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS  # a terminal's Ctrl-C reached them
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0))
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS  # each marks its trial and MLflow run
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0))
        if process.is_alive():
            process.kill()
