"""Optuna studies over the training configuration, each trial a nested MLflow run.

Submodules are imported on use (``from unmixlab.tuning.study import run_study``) so that
importing the package costs nothing:

- :mod:`~unmixlab.tuning.settings`: the ``tune`` section of an experiment (search space,
  objectives, pruner, storage, workers).
- :mod:`~unmixlab.tuning.space`: turns the search space into ``trial.suggest_*`` calls.
- :mod:`~unmixlab.tuning.storage`: SQLite / PostgreSQL (with heartbeat) or journal-file storage.
- :mod:`~unmixlab.tuning.objective`: one trial = one tracked training run, with pruning.
- :mod:`~unmixlab.tuning.study`: create or resume a study, run it on one or more workers.
- :mod:`~unmixlab.tuning.report`: best trial, Pareto front and Optuna's plots on the parent run.
"""
