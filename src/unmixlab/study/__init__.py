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

Verdicts are conservative: a difference between two configurations counts only when Welch's
t-test over the seeds finds it significant at :attr:`StudySettings.significance` (a p-value);
with one seed there is no spread, and nothing is decided.
"""

from unmixlab.study.results import (
    ConfigurationSummary,
    RunResult,
    Stat,
    number,
    summarize,
)
from unmixlab.study.settings import (
    CONTROL,
    INDEPENDENT,
    Baseline,
    Configuration,
    PlannedRun,
    Reference,
    StudyContext,
    StudySettings,
    expand,
    fixed_settings,
    label,
    plan,
)
from unmixlab.study.verdicts import HYPOTHESES, Verdict, verdicts
from unmixlab.tracking.schema import SEPARATION_METRICS

__all__ = [
    "CONTROL",
    "HYPOTHESES",
    "INDEPENDENT",
    "SEPARATION_METRICS",
    "Baseline",
    "Configuration",
    "ConfigurationSummary",
    "PlannedRun",
    "Reference",
    "RunResult",
    "Stat",
    "StudyContext",
    "StudySettings",
    "Verdict",
    "expand",
    "fixed_settings",
    "label",
    "number",
    "plan",
    "summarize",
    "verdicts",
]
