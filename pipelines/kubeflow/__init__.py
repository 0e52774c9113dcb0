"""The training pipeline on Kubeflow Pipelines (KFP v2), compiled for a cluster or run locally.

    data (synthesise the preset's data set, or import ``data_uri``) ─► prepare ─►
        for each target of the preset: train ─► evaluate ─► promote

Each step is a lightweight Python component (:mod:`pipelines.kubeflow.steps`) whose body
loads the preset with its overrides and calls the same ``unmixlab`` functions as the command
line and the Prefect flows. Steps hand each other KFP artifacts, so the Kubeflow UI shows the
lineage and the scores: the data set (``Dataset``), each target's model folder (``Model``,
with its MLflow run in the metadata), its museval scores (``Metrics``) and score tables.

One definition (:mod:`pipelines.kubeflow.pipeline`) serves both: ``unmixlab kubeflow compile``
writes the YAML a cluster runs in the project image, ``unmixlab kubeflow run-local`` runs it
here with ``kfp.local.SubprocessRunner``, each step a subprocess of this Python environment.

``kfp`` and ``kfp-kubernetes`` are the optional ``kubeflow`` extra; nothing imports them
until a pipeline is built, so importing ``pipelines`` never needs them.
"""
