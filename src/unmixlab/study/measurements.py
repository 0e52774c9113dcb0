"""What the study measures besides its trainings: costs, clocks, paced streams, baselines.

The flow fills a :class:`Measurements` (``unmixlab.study.timing`` measures) and passes it to
the verdicts and the report beside the runs read back from MLflow.
"""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CostMeasurement:
    """The cost per training sample of one configuration, from the dedicated timing pass.

    Attributes:
        configuration: its name.
        ms_per_sample: median wall milliseconds per training sample over the repeats.
        cpu_ms_per_sample: median process CPU milliseconds per training sample.
        low: fastest repeat (wall ms per sample).
        high: slowest repeat.
        repeats: timed steps (after the warm-up).
        warmup: untimed steps before them.
        parameters: the model's parameter count.
        work_per_sample: the cost model: parameters x frames of one training sample.
        load: the machine's 1-minute load average before and after the pass.
    """

    configuration: str
    ms_per_sample: float
    cpu_ms_per_sample: float
    low: float
    high: float
    repeats: int
    warmup: int
    parameters: int
    work_per_sample: float
    load: tuple[float, float]


@dataclass(frozen=True)
class RunClock:
    """The clocks of one training, as the flow measured it.

    Attributes:
        configuration: its name.
        seed: its seed.
        position: its place in the randomised run order (1-based).
        wall_seconds: wall clock of the training step.
        cpu_seconds: process CPU time of the training step.
        load: the 1-minute load average before and after.
    """

    configuration: str
    seed: int
    position: int
    wall_seconds: float
    cpu_seconds: float
    load: tuple[float, float]


@dataclass(frozen=True)
class StudyRecord:
    """One finished (configuration, seed) of a study: its run, model and clocks.

    Attributes:
        run_id: its MLflow run.
        model_dir: its model folder, on the machine that trained it.
        clock: how long it took, and the load around it.
    """

    run_id: str
    model_dir: Path
    clock: RunClock


@dataclass(frozen=True)
class PacedStream:
    """A unidirectional model streamed at the pace of live audio, all four targets.

    Attributes:
        configuration: its name.
        targets: the targets streamed (copies of the trained model stand in for the others).
        precision: the weights' precision.
        cpu: the CPU model.
        threads: torch threads.
        block_ms: one block's duration (the deadline of each block).
        latency_ms: the algorithmic latency.
        p50_ms: median processing time of a block.
        p99_ms: 99th percentile.
        worst_ms: slowest block.
        blocks: blocks streamed.
        missed: blocks whose processing ended after the next block arrived.
        offline_rtf: the bidirectional twin's offline compute seconds per audio second (same
            targets, whole clip at once), if measured.
    """

    configuration: str
    targets: tuple[str, ...]
    precision: str
    cpu: str
    threads: int
    block_ms: float
    latency_ms: float
    p50_ms: float
    p99_ms: float
    worst_ms: float
    blocks: int
    missed: int
    offline_rtf: float | None = None


@dataclass(frozen=True)
class Measurements:
    """Everything measured beside the trainings.

    Attributes:
        costs: timing pass by configuration.
        clocks: per training, in run order.
        streams: paced streams by configuration.
        baselines: test SDR (dB) of the mixture as the estimate and of the oracle mask.
        parameters: parameter count by configuration.
        budgets: training budget (epochs, steps, samples) by configuration.
    """

    costs: dict[str, CostMeasurement] = field(default_factory=dict)
    clocks: tuple[RunClock, ...] = ()
    streams: dict[str, PacedStream] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)
    budgets: dict[str, tuple[int, int, int]] = field(default_factory=dict)
