"""The ``study`` flow: the seed study's configurations side by side, and one report.

(synthesise) → prepare once → plan (budget epochs from the training tracks) → timing pass
(cost per training sample of every configuration) → the (configuration, seed) trainings in a
seeded random, interleaved order, one at a time: train (a nested MLflow run, its wall and CPU
clock and the machine's load around it) → tag it → score it with museval → (stream it, for
unidirectional models) → paced streams, the bidirectional offline cost and the baselines →
read every run back from MLflow → verdicts under the preset's analysis plan → HTML +
markdown report on the parent run and as a Prefect artifact.

Runs go one after another on purpose: trainings sharing the CPU would slow each other and
their times would not compare; the random order keeps load from lining up with
configurations.
"""

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from components.evaluate import evaluate
from components.measure_realtime import measure_realtime
from components.parent_run import end_parent_run, start_parent_run
from components.prepare_data import prepare_data
from components.record_study_run import record_study_run
from components.report_study import report_study
from components.synthesize import synthesize
from components.train import train
from unmixlab.experiment import ExperimentConfig, load_preset, run_name
from unmixlab.hardware import describe_hardware
from unmixlab.prepare import PreparedData
from unmixlab.progress import tqdm
from unmixlab.realtime import RealtimeSettings
from unmixlab.study import (
    PlannedRun,
    StudyContext,
    conduct,
    expand,
    fixed_settings,
    interleave,
    plan,
)
from unmixlab.study.measurements import Measurements, PacedStream, RunClock
from unmixlab.study.report import ReportFiles
from unmixlab.study.timing import baseline_sdr, load_average, offline_rtf, paced_stream
from unmixlab.study.verdicts import Verdict
from unmixlab.tracking.links import run_url
from unmixlab.tracking.parent_run import failure
from unmixlab.tracking.schema import (
    DATASET_FINGERPRINT_TAG,
    PREFECT_FLOW_RUN_TAG,
    RUNS,
    STUDY_SECONDS,
    STUDY_TAG,
)


@dataclass(frozen=True)
class StudySummary:
    """What one ``study`` flow run produced, and where to find it."""

    preset: str
    flow_run_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    parent_run_url: str
    run_ids: dict[str, list[str]]  # configuration -> MLflow runs (one per seed)
    verdicts: list[Verdict]
    report: ReportFiles
    seconds: float


@flow(name="study")
def study(
    preset: str = "seed-study", overrides: list[str] | None = None, seeds: int | None = None
) -> StudySummary:
    """Run every configuration of a preset's study (each with its seeds) and report on them.

    Args:
        preset: a preset name (``seed-study``, ``seed-study-quick``, ...) or a YAML file.
        overrides: ``key=value`` settings, e.g. ``data.root=/data/musdb18``.
        seeds: seeds per configuration (overrides ``study.seeds``).

    Returns:
        The runs, the verdicts and the report.

    Raises:
        UnmixlabError: a bad preset or override, or bad data (at ``prepare_data``).
    """
    start = time.perf_counter()
    logger = get_run_logger()
    overrides = [*(overrides or []), *([f"study.seeds={seeds}"] if seeds else [])]
    config = load_preset(preset, overrides)
    name = flow_run.get_name() or "local"
    run_dir = Path(config.output) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    configurations = expand(config.study)

    if config.data.synth is not None:
        synthesize(config.data.root, config.data.synth)
    prepared = prepare_data(config.data_config())  # one decoded cache for every run
    planned = plan(config, run_dir / "models", len(prepared.train))
    analysis = config.study.analysis
    power = conduct.power_of(config)  # before the runs: what the seed count can detect
    logger.info(
        "study %s: %d configurations x %d seed(s) = %d trainings of %s, outputs in %s",
        config.name,
        len(configurations),
        config.study.seeds,
        len(planned),
        config.targets[0],
        run_dir,
    )
    costs = conduct.timing_pass(
        planned, analysis.timing_repeats, analysis.timing_warmup, analysis.order_seed
    )
    parent = start_parent_run(
        config,
        run_name=f"study {config.name} {name}",
        tags={
            STUDY_TAG: config.name,
            PREFECT_FLOW_RUN_TAG: name,
            DATASET_FINGERPRINT_TAG: prepared.fingerprint,
        },
    )
    try:
        run_ids: dict[str, list[str]] = {}
        clocks, models = [], {}
        overall = tqdm(total=len(planned), desc=f"study {config.name}", unit="run")
        with overall:  # "run 7 of 24" with the time left, above each training's own bars
            for index, run in enumerate(interleave(planned, analysis.order_seed), 1):
                logger.info(
                    "run %d of %d: %s, seed %d",
                    index,
                    len(planned),
                    run.configuration.name,
                    run.seed,
                )
                overall.set_postfix_str(f"run {index} of {len(planned)}: {run.configuration.name}")
                name = run_name(preset, overrides, run.config, first=run.configuration.name)
                load, wall, cpu = load_average(), time.perf_counter(), time.process_time()
                run_id, model_dir = _train_and_measure(
                    config, run, parent.run_id, run_dir, prepared, name
                )
                clocks.append(
                    RunClock(
                        run.configuration.name,
                        run.seed,
                        index,
                        time.perf_counter() - wall,
                        time.process_time() - cpu,
                        (load, load_average()),
                    )
                )
                run_ids.setdefault(run.configuration.name, []).append(run_id)
                models.setdefault(run.configuration.name, model_dir)
                overall.update()
        measurements = Measurements(
            costs=costs,
            clocks=tuple(clocks),
            streams=_paced_streams(config, planned, models),
            baselines=baseline_sdr(
                config.data.root,
                config.data.is_wav,
                config.targets[0],
                config.train.model.nfft,
                config.train.model.nhop,
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
            analysis=analysis,
            budget=config.study.budget,
            stft=(config.train.model.nfft, config.train.model.nhop),
            notes=config.study.notes,
            command=_command(preset, overrides),
            wall_seconds=time.perf_counter() - start,
            created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            hardware=describe_hardware(planned[0].config.run.device),
            data=conduct.describe_data(config, prepared),
            baselines=config.study.baselines,
            reference_tracks=config.study.reference_tracks,
            measurements=measurements,
            power=power,
            protocols=tuple((c.name, c.protocol) for c in configurations),
        )
        files, found, summary_md = report_study(
            config, parent.experiment_id, context, run_dir / "report"
        )
    except BaseException as error:
        status, message = failure(error)
        end_parent_run(parent, status, error=message, return_state=True)  # keeps the first error
        raise
    seconds = time.perf_counter() - start
    end_parent_run(parent, "FINISHED", {STUDY_SECONDS: seconds, RUNS: len(planned)})

    parent_url = run_url(parent.tracking_uri, parent.experiment_id, parent.run_id)
    create_markdown_artifact(
        markdown=summary_md
        + f"\n\nThe full report with its plots: `{files.html}`, and the artifacts `report/` of "
        f"MLflow run [{parent.run_id}]({parent_url}).\n",
        key=re.sub(r"[^a-z0-9-]+", "-", f"study-{config.name}".lower()),
        description=f"Verdicts and results of the '{config.name}' study",
    )
    for verdict in found:
        logger.info("%s (%s): %s", verdict.key, verdict.outcome, verdict.sentence)
    logger.info("report: %s", files.html)
    return StudySummary(
        preset=config.name,
        flow_run_name=name,
        tracking_uri=parent.tracking_uri,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        parent_run_url=parent_url,
        run_ids=run_ids,
        verdicts=found,
        report=files,
        seconds=seconds,
    )


def _train_and_measure(
    config: ExperimentConfig,
    run: PlannedRun,
    parent_run_id: str,
    run_dir: Path,
    prepared: PreparedData,
    name: str,
) -> tuple[str, Path]:
    """Train one (configuration, seed) as run ``name``, record its times, score and stream it.

    Returns:
        Its MLflow run and model folder.
    """
    trained = train(run.config, prepared, config.experiment, parent_run_id, config.name, name)
    record_study_run(
        trained.run_id,
        config.name,
        run.configuration.name,
        run.seed,
        run.config.optim.samples_per_track * len(prepared.train),
    )
    if config.evaluate.enabled:
        evaluate(
            config.evaluate,
            config.data_config(),
            [trained],
            run_dir / "evaluation" / run.configuration.name / f"seed-{run.seed}",
        )
    if config.study.realtime and run.config.model.unidirectional:
        settings = RealtimeSettings(config.study.realtime_seconds, run.configuration.block_hops)
        measure_realtime(settings, trained)
    return trained.run_id, trained.model_dir


def _paced_streams(
    config: ExperimentConfig, planned: list[PlannedRun], models: dict[str, Path]
) -> dict[str, PacedStream]:
    """Each unidirectional configuration streamed at a live pace (four targets), once.

    The H2 pair's bidirectional model gets its offline cost on the same clip beside it.
    """
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


def _command(preset: str, overrides: list[str]) -> str:
    """The command line that reruns this study."""
    return " ".join(["unmixlab run study --preset", preset, *(f"--set '{o}'" for o in overrides)])
