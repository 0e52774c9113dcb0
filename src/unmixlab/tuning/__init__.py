"""The Optuna search over the training configuration, each trial a nested MLflow run.

"Search" is this package's word for what Optuna calls a study (``optuna.Study``, whose name
is ``tune.study_name``); "study" alone means the seed study (:mod:`unmixlab.study`).

Submodules are imported on use (``from unmixlab.tuning.search import start_search``) so that
importing the package costs nothing:

- :mod:`~unmixlab.tuning.settings`: the ``tune`` section of an experiment (search space,
  objectives, pruner, storage, workers).
- :mod:`~unmixlab.tuning.space`: turns the search space into ``trial.suggest_*`` calls.
- :mod:`~unmixlab.tuning.storage`: SQLite / PostgreSQL (with heartbeat) or journal-file storage.
- :mod:`~unmixlab.tuning.objective`: one trial = one tracked training run, with pruning.
- :mod:`~unmixlab.tuning.search`: create or resume a search, run it on one or more workers.
- :mod:`~unmixlab.tuning.report`: best trial, Pareto front and Optuna's plots on the parent run.
"""
