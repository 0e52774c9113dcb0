"""The seed study as a library: its grid of configurations, its results, its hypotheses.

A study trains one target under several configurations of the study's independent variables
(epochs, workers, batch size, hidden size, samples per track, LSTM direction), each with one
or more seeds, keeping the control variables (patience, lr-decay settings, bandwidth,
channels) at the preset's ``train`` values. A preset writes its ``study`` section as::

    study:
      seeds: 3                       # seeds per configuration: train.seed, train.seed + 1, ...
      configurations:                # explicit configurations, run in this order
        - {name: open-unmix, batch_size: 8, hidden_size: 256, samples_per_track: 16, epochs: 1,
           reference: {loss: 9.536, time: "7:50"}}
      grid:                          # and/or every combination of these values
        hidden_size: [128, 256, 512]
        unidirectional: [false, true]

Training time is measured the same way for every run: ``train_seconds``, logged by the
trainer every epoch, is the wall clock of the training pass (data loading, forward, backward
and optimiser steps over all batches), excluding validation, checkpointing and museval.

The analysis is fixed in the preset (:class:`AnalysisPlan`) and printed in the report: the
primary outcome (museval SDR on the test tracks), alpha, Holm's correction, the margins, and
the seed count the power analysis asks for (:mod:`unmixlab.study.power`). The verdicts
(:mod:`unmixlab.study.verdicts`) are supported, contradicted or inconclusive.
"""

from unmixlab.study.results import (
    EPOCH_TRAIN_SECONDS,
    REALTIME_FACTOR,
    SEPARATION_METRICS,
    TOTAL_TRAIN_SECONDS,
    ConfigurationSummary,
    RunResult,
    Stat,
    collect_results,
    number,
    record_run,
    summarize,
)
from unmixlab.study.settings import (
    CONTROL,
    INDEPENDENT,
    AnalysisPlan,
    Baseline,
    Budget,
    Configuration,
    PlannedRun,
    Reference,
    StudyContext,
    StudySettings,
    TrainingBudget,
    expand,
    fixed_settings,
    interleave,
    label,
    plan,
)
from unmixlab.study.verdicts import HYPOTHESES, Verdict, verdicts

__all__ = [
    "CONTROL",
    "EPOCH_TRAIN_SECONDS",
    "HYPOTHESES",
    "INDEPENDENT",
    "REALTIME_FACTOR",
    "AnalysisPlan",
    "SEPARATION_METRICS",
    "TOTAL_TRAIN_SECONDS",
    "Baseline",
    "Budget",
    "Configuration",
    "ConfigurationSummary",
    "PlannedRun",
    "Reference",
    "RunResult",
    "Stat",
    "StudyContext",
    "StudySettings",
    "TrainingBudget",
    "Verdict",
    "collect_results",
    "expand",
    "fixed_settings",
    "interleave",
    "label",
    "number",
    "plan",
    "record_run",
    "summarize",
    "verdicts",
]
