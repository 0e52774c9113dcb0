"""What the study's runs measured: per-run results, their spread over seeds, and MLflow.

Each run's dependent variables come back from MLflow
(:func:`unmixlab.tracking.study_runs.collect_results`), so a report can be rebuilt from the
tracking store alone.
"""

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from unmixlab.errors import UnmixlabError
from unmixlab.study.settings import Configuration, Reference


@dataclass(frozen=True)
class RunResult:
    """What one (configuration, seed) training measured.

    Attributes:
        configuration: configuration name.
        seed: training seed.
        run_id: its MLflow run.
        variables: the independent variables' values.
        train_loss: training loss per epoch.
        valid_loss: validation loss per epoch.
        train_seconds: training-pass wall clock per epoch (no validation, no museval).
        sdr: museval SDR of the target on the test tracks (median of medians), if scored.
        sir: museval SIR, likewise.
        isr: museval ISR, likewise.
        sar: museval SAR, likewise.
        samples_per_epoch: training chunks per epoch (samples per track x tracks).
        valid_sdr: global SDR (dB) of the validation tracks per epoch, if logged.
        rtf: real-time factor of streaming (compute seconds per audio second), if measured.
        worst_block: the slowest streamed block's compute time over its duration.
        latency_ms: algorithmic latency of the streaming separator.
        block_hops: hops per streamed block, if measured.
    """

    configuration: str
    seed: int
    run_id: str
    variables: dict[str, int | bool]
    train_loss: tuple[float, ...]
    valid_loss: tuple[float, ...]
    train_seconds: tuple[float, ...]
    sdr: float | None = None
    rtf: float | None = None
    worst_block: float | None = None
    latency_ms: float | None = None
    sir: float | None = None
    isr: float | None = None
    sar: float | None = None
    samples_per_epoch: int | None = None
    valid_sdr: tuple[float, ...] = ()
    block_hops: int | None = None

    @property
    def best_valid_loss(self) -> float:
        """Lowest validation loss (the epoch whose model is kept)."""
        return min(self.valid_loss)

    @property
    def final_train_loss(self) -> float:
        """Training loss of the last epoch."""
        return self.train_loss[-1]

    @property
    def total_seconds(self) -> float:
        """Training time: the sum of the training passes."""
        return sum(self.train_seconds)

    @property
    def seconds_per_epoch(self) -> float:
        """Mean training-pass time per epoch."""
        return self.total_seconds / len(self.train_seconds)

    @property
    def ms_per_sample(self) -> float | None:
        """Training-pass milliseconds per training sample (chunk); None if not recorded."""
        if not self.samples_per_epoch:
            return None
        return 1000 * self.total_seconds / (self.samples_per_epoch * len(self.train_seconds))


@dataclass(frozen=True)
class Stat:
    """Mean and spread of one quantity over seeds.

    Attributes:
        mean: the mean.
        sd: the sample standard deviation (0 for one value).
        n: number of values.
    """

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stat | None":
        """The statistic of ``values`` (None when there are none)."""
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return None
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), sd, len(values))

    @property
    def standard_error(self) -> float:
        """Standard error of the mean."""
        return self.sd / math.sqrt(self.n)

    def format(self, digits: int = 4) -> str:
        """``mean ± sd`` (just the mean for one value)."""
        if self.n < 2:
            return number(self.mean, digits)
        return f"{number(self.mean, digits)} ± {number(self.sd, 2)}"


def number(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, no exponent for everyday magnitudes."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}" if abs(value) < 1e6 else f"{value:.{digits - 1}e}"


@dataclass(frozen=True)
class ConfigurationSummary:
    """One configuration's runs, summarised over seeds.

    Attributes:
        name: configuration name.
        variables: independent variables' values.
        reference: the seed study's numbers, if any.
        runs: its runs, one per seed.
    """

    name: str
    variables: dict[str, int | bool]
    reference: Reference | None
    runs: tuple[RunResult, ...]

    @property
    def valid_loss(self) -> Stat:
        """Best validation loss over seeds."""
        return Stat.of(r.best_valid_loss for r in self.runs)

    @property
    def train_loss(self) -> Stat:
        """Last epoch's training loss over seeds."""
        return Stat.of(r.final_train_loss for r in self.runs)

    @property
    def total_seconds(self) -> Stat:
        """Training time (sum of the training passes) over seeds."""
        return Stat.of(r.total_seconds for r in self.runs)

    @property
    def seconds_per_epoch(self) -> Stat:
        """Training-pass seconds per epoch over seeds."""
        return Stat.of(r.seconds_per_epoch for r in self.runs)

    @property
    def sdr(self) -> Stat | None:
        """SDR (museval) over seeds (None if not scored)."""
        return Stat.of(r.sdr for r in self.runs)

    @property
    def rtf(self) -> Stat | None:
        """Real-time factor over seeds (None if not measured)."""
        return Stat.of(r.rtf for r in self.runs)

    def separation(self, metric: str) -> Stat | None:
        """A museval score (``SDR``, ``SIR``, ``ISR``, ``SAR``) over seeds (None if not scored)."""
        return Stat.of(getattr(r, metric.lower()) for r in self.runs)

    @property
    def ms_per_sample(self) -> Stat | None:
        """Training-pass milliseconds per training sample over seeds (None if not recorded)."""
        return Stat.of(r.ms_per_sample for r in self.runs)

    @property
    def samples_per_epoch(self) -> int | None:
        """Training samples per epoch (the same for every seed)."""
        return self.runs[0].samples_per_epoch

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of its runs."""
        return tuple(r.seed for r in self.runs)


def summarize(
    results: Sequence[RunResult], configurations: Sequence[Configuration] = ()
) -> list[ConfigurationSummary]:
    """Group ``results`` by configuration, in the order of ``configurations`` (then first seen).

    Raises:
        UnmixlabError: no results.
    """
    if not results:
        raise UnmixlabError("the study has no finished runs", "Check the flow's log for failures")
    order = [c.name for c in configurations]
    order += [r.configuration for r in results if r.configuration not in order]
    references = {c.name: c.reference for c in configurations}
    summaries = []
    for name in dict.fromkeys(order):
        runs = tuple(sorted((r for r in results if r.configuration == name), key=lambda r: r.seed))
        if runs:
            summaries.append(
                ConfigurationSummary(name, runs[0].variables, references.get(name), runs)
            )
    return summaries
