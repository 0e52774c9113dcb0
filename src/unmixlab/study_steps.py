"""The study's steps: plan its trainings, run one of them, and report on all of them.

Every engine runs a study through these three, so they cannot drift apart: the Prefect flow
(in its own process, on worker processes, or as runs of a deployment picked up by any worker
of a work pool) and the Kubeflow pipeline (one ``ParallelFor`` iteration per training).

A training is complete when :func:`train_study_run` has recorded it under the study's key
(:func:`study_key`: the settings that change what a training learns, and the data), its last
write. A rerun of an interrupted study finds those records (:func:`missing_runs`) and trains
only the rest; where and in what order the runs went does not change their seeds or losses.
"""

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unmixlab.errors import UnmixlabError
from unmixlab.experiment import ExperimentConfig, run_name
from unmixlab.hardware import describe_hardware
from unmixlab.prepare import PreparedData
from unmixlab.realtime import RealtimeSettings
from unmixlab.steps.evaluate import evaluate_models
from unmixlab.steps.measure import measure_realtime
from unmixlab.steps.train import train_model
from unmixlab.study import (
    StudyContext,
    conduct,
    expand,
    fixed_settings,
    interleave,
    plan,
    summarize,
)
from unmixlab.study.measurements import CostMeasurement, Measurements, RunClock, StudyRecord
from unmixlab.study.settings import PlannedRun
from unmixlab.tracking.links import run_url
from unmixlab.tracking.parent_run import ParentRun
from unmixlab.tracking.study_runs import (
    collect_results,
    log_study_report,
    record_study_run,
    study_records,
)
from unmixlab.trainer import checkpoint_path

if TYPE_CHECKING:
    from unmixlab.study.measurements import PacedStream
    from unmixlab.study.report import ReportFiles
    from unmixlab.study.verdicts import Verdict

# study settings that do not change what a training learns: a rerun with other values of
# these reuses the trainings it has (more seeds add runs; the analysis is read afterwards)
NOT_IN_KEY = ("seeds", "workers", "deployment", "analysis", "notes", "baselines",
              "reference_tracks")  # fmt: skip


def study_key(config: ExperimentConfig, fingerprint: str) -> str:
    """The key of a study's trainings: its training settings and its data's fingerprint."""
    settings = config.model_dump(mode="json", include={"targets", "train", "evaluate", "study"})
    settings["study"] = {k: v for k, v in settings["study"].items() if k not in NOT_IN_KEY}
    blob = json.dumps([settings, fingerprint], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Training:
    """One training a study asks for, as an engine hands it to a worker (JSON-serialisable).

    Attributes:
        configuration: the configuration's name.
        seed: the training seed.
        position: its place in the study's randomised, interleaved order (1-based).
    """

    configuration: str
    seed: int
    position: int


def ordered(config: ExperimentConfig, planned: Sequence[PlannedRun]) -> list[Training]:
    """The study's trainings in its seeded random order (``analysis.order_seed``)."""
    runs = interleave(list(planned), config.study.analysis.order_seed)
    return [Training(r.configuration.name, r.seed, i) for i, r in enumerate(runs, 1)]


def missing_runs(
    trainings: Sequence[Training], records: Mapping[tuple[str, int], StudyRecord]
) -> list[Training]:
    """The trainings that have no complete record yet, in study order."""
    return [t for t in trainings if (t.configuration, t.seed) not in records]


def planned_run(
    config: ExperimentConfig, run_dir: Path, train_tracks: int, training: Training
) -> PlannedRun:
    """The :class:`PlannedRun` of ``training`` (its full settings), as :func:`plan` makes it.

    Raises:
        UnmixlabError: the preset has no such configuration and seed (a worker given
            another preset or other overrides than the study's).
    """
    for run in plan(config, run_dir / "models", train_tracks):
        if (run.configuration.name, run.seed) == (training.configuration, training.seed):
            return run
    raise UnmixlabError(
        f"study '{config.name}' has no configuration {training.configuration} with seed "
        f"{training.seed}",
        "Give the worker the study's own preset and overrides",
    )


def train_study_run(
    config: ExperimentConfig,
    preset: str,
    overrides: Sequence[str],
    training: Training,
    prepared: PreparedData,
    parent_run_id: str,
    run_dir: Path,
    key: str,
) -> StudyRecord:
    """Train one (configuration, seed), score it, stream it if causal, record it as complete.

    A model folder left by an interrupted attempt is resumed. The clocks cover the whole
    step, in this process; the record (:func:`record_study_run`) is written last.

    Raises:
        UnmixlabError: bad settings or data; MetricsUnsent: the tracking server went away
            (the model folder keeps the training; running the step again resumes it).
    """
    run = planned_run(config, run_dir, len(prepared.train), training)
    from unmixlab.study.timing import load_average  # torch: only where a training runs

    load, wall, cpu = load_average(), time.perf_counter(), time.process_time()
    trained = train_model(
        run.config,
        prepared,
        experiment=config.experiment,
        run_name=run_name(preset, overrides, run.config, first=training.configuration),
        parent_run_id=parent_run_id,
        preset=config.name,
        resume=checkpoint_path(run.config).is_file(),
    )
    if config.evaluate.enabled:
        folder = run_dir / "evaluation" / training.configuration / f"seed-{training.seed}"
        evaluate_models(config.evaluate, config.data_config(), [trained], folder)
    if config.study.realtime and run.config.model.unidirectional:
        settings = RealtimeSettings(config.study.realtime_seconds, run.configuration.block_hops)
        measure_realtime(settings, trained)
    clock = RunClock(
        training.configuration,
        training.seed,
        training.position,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        (load, load_average()),
    )
    record_study_run(
        trained.run_id,
        study=config.name,
        key=key,
        clock=clock,
        chunks_per_epoch=run.config.optim.samples_per_track * len(prepared.train),
        model_dir=trained.model_dir,
    )
    return StudyRecord(trained.run_id, trained.model_dir, clock)


def complete_records(
    parent: ParentRun, key: str, trainings: Sequence[Training]
) -> dict[tuple[str, int], StudyRecord]:
    """Every training's record, once all ran.

    Raises:
        UnmixlabError: some training has no complete record (its worker failed).
    """
    records = study_records(parent.experiment_id, key)
    lost = missing_runs(trainings, records)
    if lost:
        names = ", ".join(f"{t.configuration} seed {t.seed}" for t in lost[:5])
        raise UnmixlabError(
            f"{len(lost)} training(s) of the study did not complete: {names}",
            "Read their workers' logs, then run the study again: it trains only these",
        )
    return records


def costs_to_json(costs: Mapping[str, CostMeasurement]) -> str:
    """The timing pass as JSON (a Kubeflow step hands it to the report step)."""
    return json.dumps({name: asdict(cost) for name, cost in costs.items()})


def costs_from_json(text: str) -> dict[str, CostMeasurement]:
    """The inverse of :func:`costs_to_json`."""
    found = json.loads(text)
    return {n: CostMeasurement(**(c | {"load": tuple(c["load"])})) for n, c in found.items()}


@dataclass(frozen=True)
class StudyReport:
    """The report of a study: its files, its verdicts and a markdown summary without images."""

    files: "ReportFiles"
    verdicts: list["Verdict"]
    summary_markdown: str


def report_study(
    config: ExperimentConfig,
    preset: str,
    overrides: Sequence[str],
    prepared: PreparedData,
    parent: ParentRun,
    costs: Mapping[str, CostMeasurement],
    run_dir: Path,
    started: float,
) -> StudyReport:
    """Measure what the trainings leave (paced streams, baselines), decide, write, log.

    Args:
        config: the study's preset with its overrides.
        preset: the preset's name or file, printed in the rerun command.
        overrides: its ``key=value`` settings, printed likewise.
        prepared: the prepared data.
        parent: the study's MLflow run (the report is logged there).
        costs: the timing pass.
        run_dir: the study's output folder (``report/`` is written there).
        started: ``time.time()`` when the study began (its wall time in the report).

    Raises:
        UnmixlabError: a training has no complete record.
    """
    from unmixlab.study.report import render_markdown, write_report
    from unmixlab.study.timing import baseline_sdr
    from unmixlab.study.verdicts import verdicts

    planned = plan(config, run_dir / "models", len(prepared.train))
    key = study_key(config, prepared.fingerprint)
    records = complete_records(parent, key, ordered(config, planned))
    clocks = sorted((r.clock for r in records.values()), key=lambda c: c.position)
    first: dict[str, Path] = {}  # each configuration's first model in the study's order
    for c in clocks:
        first.setdefault(c.configuration, records[(c.configuration, c.seed)].model_dir)
    model = config.train.model
    measurements = Measurements(
        costs=dict(costs),
        clocks=tuple(clocks),
        streams=_paced_streams(config, planned, first),
        baselines=baseline_sdr(
            config.data.root, config.data.is_wav, config.targets[0], model.nfft, model.nhop
        ),
        parameters=conduct.parameters(planned),
        budgets=conduct.budgets(planned, len(prepared.train)),
    )
    context = StudyContext(
        name=config.name,
        description=config.description,
        experiment=config.experiment,
        study_run_id=parent.run_id,
        study_run_url=run_url(parent.tracking_uri, parent.experiment_id, parent.run_id),
        target=config.targets[0],
        data_root=str(config.data.root),
        fixed=fixed_settings(planned[0].config),
        seeds=tuple(dict.fromkeys(run.seed for run in planned)),
        analysis=config.study.analysis,
        budget=config.study.budget,
        stft=(model.nfft, model.nhop),
        notes=config.study.notes,
        command=rerun_command(preset, overrides),
        wall_seconds=time.time() - started,
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        hardware=describe_hardware(planned[0].config.run.device),
        data=conduct.describe_data(config, prepared),
        baselines=config.study.baselines,
        reference_tracks=config.study.reference_tracks,
        measurements=measurements,
        power=conduct.power_of(config),
        protocols=tuple((c.name, c.protocol) for c in expand(config.study)),
    )
    results = collect_results(parent.experiment_id, key, context.target)
    summaries = summarize(results, expand(config.study))
    found = verdicts(summaries, config.study, measurements, context.stft)
    files = write_report(context, summaries, found, run_dir / "report")
    log_study_report(
        parent.run_id,
        [files.html, files.markdown],
        files.images[0].parent,
        {verdict.key: verdict.outcome for verdict in found},
    )
    summary = render_markdown(context, summaries, found, (), image_dir="")
    return StudyReport(files, found, summary)


def _paced_streams(
    config: ExperimentConfig, planned: Sequence[PlannedRun], models: Mapping[str, Path]
) -> dict[str, "PacedStream"]:
    """Each unidirectional configuration streamed at a live pace (four targets), once.

    The H2 pair's bidirectional model gets its offline cost on the same clip beside it.
    """
    from dataclasses import replace

    from unmixlab.study.timing import offline_rtf, paced_stream

    if not config.study.realtime:
        return {}
    target, seconds = config.targets[0], config.study.realtime_seconds
    pair = config.study.analysis.h2_pair
    offline = offline_rtf(models[pair[0]], target, seconds) if pair and pair[0] in models else None
    streams = {}
    for run in conduct.first_of_each(planned):
        name = run.configuration.name
        if run.config.model.unidirectional and name in models:
            stream = paced_stream(name, models[name], target, run.configuration.block_hops, seconds)
            streams[name] = replace(stream, offline_rtf=offline)
    return streams


def rerun_command(preset: str, overrides: Sequence[str]) -> str:
    """The command line that reruns a study."""
    return " ".join(["unmixlab run study --preset", preset, *(f"--set '{o}'" for o in overrides)])
