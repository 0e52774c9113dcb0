"""One trial: train the suggested configuration as a tracked run, prune it, score it.

Single-objective studies report the validation loss after every epoch
(``trial.report(valid_loss, epoch)``) so that the pruner can stop a bad trial early.
Optuna cannot prune multi-objective studies: ``loss,time`` and ``loss,rtf`` trials always
run their full epoch budget.
"""

import json
import math
import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.steps.train import TrainedModel, train_model
from unmixlab.tracking.links import run_url
from unmixlab.tracking.names import trial_run_name
from unmixlab.tracking.runs import run_file
from unmixlab.tracking.schema import OPTUNA_STUDY_TAG, OPTUNA_TRIAL_TAG
from unmixlab.tracking.trials import RUN_ID_ATTR, client, mark_trial_run
from unmixlab.trainer import EpochRecord, Trainer, TrainingCallback
from unmixlab.tuning.settings import TuneConfig
from unmixlab.tuning.space import suggest, trial_config

RUN_URL_ATTR = "mlflow_run"  # trial user attribute: the child run's page in the MLflow UI
INTERRUPTED_ATTR = "interrupted"  # trial user attribute: stopped by Ctrl-C/SIGTERM, not failed


def requeue(study: optuna.Study, params: dict, number: int) -> None:
    """Queue an interrupted trial's parameters again, noting which trial it retries."""
    study.enqueue_trial(params, user_attrs={"retry_of": number})


class PruningCallback(TrainingCallback):
    """Reports each epoch's validation loss to the trial; stops training when told to prune."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """Report ``valid_loss`` at step ``epoch``; raise :class:`optuna.TrialPruned` to stop.

        Raises:
            optuna.TrialPruned: the pruner judged the trial worse than its peers.
        """
        self.trial.report(record.valid_loss, record.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {record.epoch} (valid loss {record.valid_loss:.5g})"
            )


class RunRecorder(TrainingCallback):
    """Stores the child run on the trial once training starts: its id and its UI page.

    The id serves dead-worker clean-up; the page is what optuna-dashboard shows a person.
    """

    def __init__(self, trial: optuna.Trial, config: TrainConfig):
        self.trial = trial
        self.config = config

    def on_train_start(self, trainer: Trainer) -> None:
        """Record the run that the train step wrote next to the model."""
        if run_id := trial_run_id(self.config):
            self.trial.set_user_attr(RUN_ID_ATTR, run_id)
            mlflow_client = client()
            run = mlflow_client.get_run(run_id)
            url = run_url(mlflow_client.tracking_uri, run.info.experiment_id, run_id)
            self.trial.set_user_attr(RUN_URL_ATTR, url)
            save_trial_note(self.trial, f"MLflow run: [{run.info.run_name}]({url})")


def save_trial_note(trial: optuna.Trial, markdown: str) -> None:
    """Show ``markdown`` as the trial's note in optuna-dashboard (its links are clickable).

    Needs the ``dashboard`` extra (``optuna-dashboard``); without it the trial's user
    attribute ``mlflow_run`` holds the same link, as plain text.
    """
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    save_note(trial, markdown)


def trial_run_id(config: TrainConfig) -> str | None:
    """The MLflow run that tracks the training in ``config.run.output``, if one started."""
    path = run_file(config)
    return json.loads(path.read_text())["mlflow_run_id"] if path.is_file() else None


@torch.no_grad()
def separator_rtf(model_dir: Path, seconds: float, seed: int = 0) -> float:
    """Real-time factor of the offline separator: CPU seconds per second of audio.

    Separates a fixed noise clip of ``seconds`` on one torch thread, after a warm-up pass,
    and counts this thread's CPU time, so that other work on the machine (parallel trials)
    does not inflate it. Every trial is measured so, bidirectional models included
    (:func:`unmixlab.realtime.measure_realtime` streams unidirectional models only).
    """
    from unmixlab.realtime import torch_threads
    from unmixlab.separator import load_separator

    separator = load_separator(model_dir).eval()
    generator = torch.Generator().manual_seed(seed)
    clip = 0.1 * torch.randn(  # (nb_channels, nb_timesteps)
        separator.nb_channels, int(seconds * separator.sample_rate), generator=generator
    )
    with torch_threads(1):
        separator.separate(clip[:, : separator.sample_rate], separator.sample_rate, False)
        start = time.thread_time()
        separator.separate(clip, separator.sample_rate, progress=False)
        return (time.thread_time() - start) / seconds


@dataclass(frozen=True)
class Objective:
    """Optuna's objective: one trial = one tracked training nested under the study's run.

    Attributes:
        base: the training configuration the space modifies (data, target, fixed settings).
        tune: the study settings (space, objective, pruner, epoch budget).
        experiment: MLflow experiment of the trial runs.
        trials_dir: parent of the per-trial model folders ``trial-NNNN``.
        parent_run_id: the study's MLflow run.
        preset: the preset name (tag of each run).
    """

    base: TrainConfig
    tune: TuneConfig
    experiment: str
    trials_dir: Path
    parent_run_id: str | None = None
    preset: str | None = None

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        """Train the trial's configuration and return its objective value(s).

        Raises:
            optuna.TrialPruned: pruned; its run ends FINISHED with ``trial_state=PRUNED``.
            KeyboardInterrupt: Ctrl-C or SIGTERM; Optuna records the trial FAIL, with the user
                attribute ``interrupted``, and its parameters are queued again.
            Exception: anything the training raised (the study records the trial FAILED,
                with the message as user attribute ``error``); a NaN loss is one.
        """
        config = None
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            params = suggest(trial, self.tune.space)
            config = trial_config(
                self.base, params, self.trials_dir / f"trial-{trial.number:04d}", self.tune.epochs
            )
            run_file(config).unlink(missing_ok=True)  # left by an earlier study of this name
            callbacks: list[TrainingCallback] = [RunRecorder(trial, config)]
            if not self.tune.multi_objective and self.tune.pruner != "none":
                callbacks.append(PruningCallback(trial))
            trained = train_model(
                config,
                experiment=self.experiment,
                run_name=trial_run_name(trial.number, params),
                parent_run_id=self.parent_run_id,
                tags={
                    OPTUNA_STUDY_TAG: trial.study.study_name,
                    OPTUNA_TRIAL_TAG: str(trial.number),
                },
                preset=self.preset,
                callbacks=callbacks,
                log_model=False,  # files and checkpoint only; --train-best logs the model
            )
            values = self._measure(trained, config)
        except optuna.TrialPruned as pruned:
            self._mark(config, "PRUNED", error=str(pruned))
            raise
        except BaseException as error:  # errors, Ctrl-C, SIGTERM
            if not isinstance(error, Exception):  # interrupted from outside: not its fault
                self._interrupted(trial, config)
                raise
            message = f"{type(error).__name__}: {error}"
            trial.set_user_attr("error", message[:2000])
            self._mark(config, "FAIL", error=message)
            raise
        self._mark(config, "COMPLETE", values)
        for name, value in values.items():
            trial.set_user_attr(name, value)
        return values["loss"] if len(values) == 1 else tuple(values.values())

    def _measure(self, trained: TrainedModel, config: TrainConfig) -> dict[str, float]:
        values = {"loss": trained.best_valid_loss}
        if "time" in self.tune.metrics:
            values["time"] = statistics.fmean(trained.epoch_seconds)
        if "rtf" in self.tune.metrics:
            values["rtf"] = separator_rtf(config.run.output, self.tune.rtf_seconds)
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            raise UnmixlabError(
                f"trial objective {', '.join(bad)} is {values[bad[0]]}",
                "Narrow the search space (e.g. the learning rate range)",
                config.run.output,
            )
        return values

    def _interrupted(self, trial: optuna.Trial, config: TrainConfig | None) -> None:
        """Mark an interrupted trial so, and queue its parameters for the next run."""
        trial.set_user_attr(INTERRUPTED_ATTR, True)
        self._mark(config, "INTERRUPTED")
        if trial.params:
            requeue(trial.study, trial.params, trial.number)

    @staticmethod
    def _mark(
        config: TrainConfig | None,
        state: str,
        values: dict[str, float] | None = None,
        error: str | None = None,
    ) -> None:
        run_id = trial_run_id(config) if config is not None else None
        if run_id:
            mark_trial_run(run_id, state, values, error)
