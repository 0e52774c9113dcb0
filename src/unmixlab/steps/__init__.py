"""The lifecycle steps, each written once: prepare → train → evaluate → measure → promote.

Each step is a plain function that takes its whole settings section and the previous step's
typed result, does its own MLflow tracking through :mod:`unmixlab.tracking`, and returns one
typed, serialisable result. The Prefect tasks (``components/``), the Kubeflow components, the
command line, the Optuna objective and the study call them in a line or two; they add only
their engine's concerns (retries, caching, artifacts, printing).

=============================== ============================================ ===============
step                            takes                                        returns
=============================== ============================================ ===============
``prepare.prepare_data``        ``DataConfig``                               ``PreparedData``
``train.train_model``           ``TrainConfig``, ``PreparedData``            ``TrainedModel``
``evaluate.evaluate_models``    ``EvaluateSettings``, ``TrainedModel`` list  ``Evaluation``
``measure.measure_realtime``    ``RealtimeSettings``, ``TrainedModel``       ``RealtimeStats``
``promote.promote``             ``PromoteSettings``, a target                ``Promotion``
=============================== ============================================ ===============

``prepare.synthesize_data`` makes a preset's synthetic data set (``SynthSettings``) first;
``evaluate.evaluate_folder`` scores a model folder that no step trained (``unmixlab
evaluate``).
"""
