"""Every MLflow name unmixlab writes or reads: metrics, params, tags, artifact folders.

Writers (:mod:`unmixlab.tracking`, :mod:`unmixlab.steps`) and readers (the study's results,
the Optuna search, the registry, the reports) use these names and nothing else, so a renamed
metric is renamed everywhere. This module imports nothing: any layer may read it.
"""

# museval's four BSS Eval v4 scores, in the order every table shows them
SEPARATION_METRICS = ("SDR", "SIR", "SAR", "ISR")


def test_metric(metric: str, target: str) -> str:
    """A museval score on the test tracks: ``test_sdr_vocals`` for ``("SDR", "vocals")``."""
    return f"test_{metric.lower()}_{target}"


# a training run's params are its whole TrainConfig, flat (``hidden_size``, ``lr``, ...)

# per-epoch metrics of a training run, logged with step=epoch
TRAIN_LOSS = "train_loss"
VALID_LOSS = "valid_loss"
VALID_SDR = "valid_sdr"  # global SDR (dB) of the validation tracks
LR = "lr"
EPOCH_SECONDS = "epoch_seconds"  # wall clock of the whole epoch (validation included)
TRAIN_SECONDS = "train_seconds"  # wall clock of the training pass only
SAMPLES_PER_SECOND = "samples_per_second"
EPOCH_METRICS = (
    TRAIN_LOSS,
    VALID_LOSS,
    VALID_SDR,
    LR,
    EPOCH_SECONDS,
    TRAIN_SECONDS,
    SAMPLES_PER_SECOND,
)

# a training run's summary, logged once at step 0 (a flow's parent run: training_seconds)
TRAINING_SECONDS = "training_seconds"
BEST_VALID_LOSS = "best_valid_loss"
BEST_EPOCH = "best_epoch"
EPOCHS_TRAINED = "epochs_trained"
SUMMARY_METRICS = (TRAINING_SECONDS, BEST_VALID_LOSS, BEST_EPOCH, EPOCHS_TRAINED)

# real-time figures of a streamed unidirectional model
STREAM_RTF = "stream_rtf"  # processing seconds per second of audio
LATENCY_MS = "latency_ms"  # algorithmic latency
WORST_BLOCK_RATIO = "worst_block_ratio"  # slowest block's time over its duration
REALTIME_METRICS = (STREAM_RTF, LATENCY_MS, WORST_BLOCK_RATIO)
BLOCK_HOPS_TAG = "realtime_block_hops"

# the seed study
STUDY_TAG = "study"
CONFIGURATION_TAG = "configuration"
SEED_TAG = "seed"
TOTAL_TRAIN_SECONDS = "total_train_seconds"  # sum of a run's train_seconds
SAMPLES_PER_EPOCH = "samples_per_epoch"
STUDY_SECONDS = "study_seconds"  # the study's parent run: its wall clock
STUDY_KEY_TAG = "study_key"  # the design and data a run was trained for: what a rerun reuses
MODEL_DIR_TAG = "model_dir"  # the run's model folder, where it was trained
RUN_POSITION = "study_run_position"  # its place in the study's randomised order (1-based)
RUN_WALL_SECONDS = "study_run_wall_seconds"  # train, score and stream: wall clock
RUN_CPU_SECONDS = "study_run_cpu_seconds"  # the same, CPU time of its process
LOAD_BEFORE = "load_before"  # the machine's 1-minute load average around it
LOAD_AFTER = "load_after"
RUNS = "runs"  # the study's parent run: trainings made


def verdict_tag(key: str) -> str:
    """The tag holding a hypothesis' outcome on the study's parent run."""
    return f"verdict.{key.replace(' ', '_')}"  # "H1 time" -> verdict.H1_time


# the Optuna search
TRIAL_STATE_TAG = "trial_state"  # COMPLETE, PRUNED or FAIL
OPTUNA_STUDY_TAG = "optuna.study"
OPTUNA_TRIAL_TAG = "optuna.trial"
BEST_TRIAL_TAG = "best_trial"
BEST_TRAINING_RUN_TAG = "best_training_run"
REPORT_NOTE_TAG = "report_note"  # the search report stopped waiting with trials running


def objective_metric(name: str) -> str:
    """A trial's objective value (``loss``, ``time``, ``rtf``) on its run."""
    return f"objective_{name}"


# tags of every run unmixlab opens
TARGET_TAG = "target"
PRESET_TAG = "preset"
DATASET_FINGERPRINT_TAG = "dataset_fingerprint"
MODEL_URI_TAG = "model_uri"  # the pyfunc model, models:/<id>; only promotable runs have it
ORCHESTRATOR_TAG = "orchestrator"  # kubeflow (Prefect runs carry prefect_flow_run)
PREFECT_FLOW_RUN_TAG = "prefect_flow_run"
ERROR_TAG = "error"
SCORER_TAG = "scorer"  # what scored the run's test_* metrics: unmixlab-bsseval or museval
SCORER_VERSION_TAG = "scorer_version"
NOTE_TAG = "mlflow.note.content"  # MLflow's run and experiment description


def resumed_tag(param: str) -> str:
    """A setting a resume changed (params cannot change): ``resumed.epochs``."""
    return f"resumed.{param}"


def evaluate_setting_tag(name: str) -> str:
    """How a run's scores were made: ``evaluate.residual``, ``evaluate.device``, ..."""
    return f"evaluate.{name}"


# artifact folders of a training run
EVALUATION_ARTIFACTS = "evaluation"
LISTENING_ARTIFACTS = "evaluation/listen"  # the excerpts and their page
