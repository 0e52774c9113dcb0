"""The lifecycle steps, each written once: prepare → train → evaluate → measure → promote.

Each step is a plain function that takes its whole settings section and the previous step's
typed result, does its own MLflow tracking through :mod:`unmixlab.tracking`, and returns one
typed, serialisable result. The Prefect tasks (``components/``), the Kubeflow components, the
command line, the Optuna objective and the study call them in a line or two; they add only
their engine's concerns (retries, caching, artifacts, printing).

=========== =========================================== ==============================
step        settings                                    result
=========== =========================================== ==============================
prepare     ``DataConfig`` (+ ``SynthSettings``)        ``PreparedData``
train       ``TrainConfig``, ``PreparedData``           ``TrainedModel``
evaluate    ``EvaluateSettings``, ``TrainedModel`` s    ``Evaluation``
measure     ``RealtimeSettings``, ``TrainedModel``      ``RealtimeStats``
promote     ``PromoteSettings``, a target               ``Promotion``
=========== =========================================== ==============================
"""
