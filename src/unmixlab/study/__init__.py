"""The seed study as a library: its grid of configurations, its results, its hypotheses.

A study trains one target under several configurations of the study's independent variables
(epochs, workers, batch size, hidden size, samples per track, LSTM direction), each with one
or more seeds, keeping the control variables (patience, lr-decay settings, bandwidth,
channels) at the preset's ``train`` values. A preset writes its ``study`` section as::

    study:
      seeds: 6                       # seeds per configuration: train.seed, train.seed + 1, ...
      budget: {samples: 2048, lr_rule: constant}   # the design's equal training budget
      analysis: {alpha: 0.05, sdr_margin_db: 0.5, cost_margin: 1.25, h2_pair: [centre, uni]}
      configurations:                # explicit configurations
        - {name: open-unmix, protocol: seed, batch_size: 8, hidden_size: 256,
           samples_per_track: 16, epochs: 1, reference: {loss: 9.536, time: "7:50"}}
        - {name: centre, batch_size: 16, hidden_size: 256, samples_per_track: 16}
      grid:                          # and/or every combination of these values (budget)
        hidden_size: [128, 256, 512]

``protocol: seed`` configurations replicate the seed (epochs as it ran them); the others
(``budget``) train on ``budget.samples`` training samples each, the design that answers the
hypotheses. The flow runs every (configuration, seed) in a seeded random order, after a
timing pass that measures each configuration's cost per training sample
(:mod:`unmixlab.study.timing`).

The analysis is fixed in the preset (:class:`AnalysisPlan`) and printed in the report: the
primary outcome (museval SDR on the test tracks), alpha, Holm's correction, the margins, and
the seed count the power analysis asks for (:mod:`unmixlab.study.power`). The verdicts
(:mod:`unmixlab.study.verdicts`, imported from there: it needs scipy and statsmodels, which
loading a preset does not) are supported, contradicted or inconclusive.
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
from unmixlab.tracking.schema import SEPARATION_METRICS

__all__ = [
    "CONTROL",
    "INDEPENDENT",
    "AnalysisPlan",
    "SEPARATION_METRICS",
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
    "expand",
    "fixed_settings",
    "interleave",
    "label",
    "number",
    "plan",
    "summarize",
]
