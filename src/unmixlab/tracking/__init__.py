"""MLflow tracking, the only package of unmixlab that imports ``mlflow``.

Every name it writes or reads is in :mod:`~unmixlab.tracking.schema`. Training runs
(:mod:`~unmixlab.tracking.runs`), parent runs, the records of an evaluation, of a real-time
measurement, of the seed study and of the Optuna search, the served pyfunc model and
promotion in the Model Registry each have a module. Submodules are imported on use
(``from unmixlab.tracking.runs import train_tracked``) so that importing the package costs
nothing.
"""
