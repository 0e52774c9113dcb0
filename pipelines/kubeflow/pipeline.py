"""Build the KFP training pipeline once; compile it for a cluster or run it locally.

On a cluster the pods read MLflow settings from the cluster, never from the compiled YAML: the
ConfigMap ``unmixlab-mlflow`` supplies ``MLFLOW_TRACKING_URI`` and ``MLFLOW_S3_ENDPOINT_URL``,
and the optional Secret ``unmixlab-mlflow-auth`` supplies ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (see ``infra/kubernetes.md``). Run locally, the steps inherit
this process's environment instead.
"""

import contextlib
import re
import warnings
from pathlib import Path

from pipelines.kubeflow.step_log import StepLog
from unmixlab.errors import UnmixlabError
from unmixlab.files import atomic_path

DEFAULT_IMAGE = "unmixlab:0.1.0"
PIPELINE_NAME = "unmixlab-training"
MLFLOW_CONFIG_MAP = "unmixlab-mlflow"
MLFLOW_AUTH_SECRET = "unmixlab-mlflow-auth"
# environment variable -> key in the ConfigMap / Secret (the same names)
MLFLOW_SETTINGS = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL")
MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def build_pipeline(image: str = DEFAULT_IMAGE, data_uri: str | None = None):
    """The training pipeline, its steps running in ``image`` (``infra/Dockerfile``).

    Args:
        image: the project image, holding unmixlab and kfp.
        data_uri: a MUSDB18-HQ folder the pipeline imports (``s3://...``, ``minio://...``,
            or a local folder when run locally); None synthesises the preset's data set.

    Returns:
        A ``kfp.dsl`` pipeline: compile it, or call it after ``kfp.local.init``.

    Raises:
        UnmixlabError: ``kfp`` or ``kfp-kubernetes`` is not installed.
    """
    try:
        from kfp import dsl, kubernetes

        from pipelines.kubeflow import steps
    except ImportError as error:
        raise UnmixlabError(
            f"the Kubeflow pipeline needs kfp and kfp-kubernetes ({error})",
            "install the extra: pip install 'unmixlab[kubeflow]'",
        ) from error

    def component(function):
        # the image holds unmixlab and kfp (its `kubeflow` extra): nothing to pip install
        return dsl.component(function, base_image=image, install_kfp_package=False)

    synth_data = component(steps.synth_data)
    prepare_data = component(steps.prepare_data)
    train_target = component(steps.train_target)
    evaluate_model = component(steps.evaluate_model)
    promote_model = component(steps.promote_model)

    def use_mlflow(task: dsl.PipelineTask) -> dsl.PipelineTask:
        """Point a task at the cluster's MLflow server through its pod environment."""
        kubernetes.use_config_map_as_env(
            task, MLFLOW_CONFIG_MAP, {name: name for name in MLFLOW_SETTINGS}
        )
        kubernetes.use_secret_as_env(
            task, MLFLOW_AUTH_SECRET, {name: name for name in MLFLOW_CREDENTIALS}, optional=True
        )
        # a rerun must train and log again, not reuse a cached result
        task.set_caching_options(False)
        return task

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Open-Unmix: data, prepare, train per target, evaluate, promote (MLflow).",
    )
    def training(
        preset: str = "quickstart",
        overrides: list = [],  # noqa: B006 (KFP reads the default as a constant)
    ):
        """Train, evaluate and promote one model per target of a preset.

        Args:
            preset: a preset name (``quickstart``, ``umx``) or a YAML file in the image.
            overrides: ``key=value`` settings, e.g. ``train.epochs=5``, as ``--set`` takes.
        """
        if data_uri:
            source = dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
            data = source.set_display_name("import-data").output
        else:
            source = synth_data(preset=preset, overrides=overrides)
            data = source.set_display_name("synth-data").outputs["data"]

        prepare = prepare_data(preset=preset, overrides=overrides, data=data)
        prepare.set_display_name("prepare")

        with dsl.ParallelFor(prepare.output, name="per-target") as target:
            common = {"preset": preset, "overrides": overrides, "target": target}
            train = train_target(**common, data=data).set_display_name("train")
            use_mlflow(train).set_cpu_request("2").set_memory_request("8G")

            evaluate = evaluate_model(**common, data=data, model=train.outputs["model"])
            use_mlflow(evaluate.set_display_name("evaluate"))
            evaluate.set_cpu_request("2").set_memory_request("8G")

            promote = promote_model(**common, scores=evaluate.outputs["scores"])
            use_mlflow(promote.set_display_name("promote"))

    return training


def compile_pipeline(output: Path, image: str = DEFAULT_IMAGE, data_uri: str | None = None) -> Path:
    """Compile the pipeline to a KFP v2 YAML package at ``output`` (its folder is created).

    Raises:
        UnmixlabError: ``kfp`` or ``kfp-kubernetes`` is not installed, ``image`` is blank,
            or ``output`` cannot be written (disk full, read-only).
    """
    if not image.strip():
        raise UnmixlabError(
            "--image is empty: the steps would have no image to run in",
            f"Pass the image built from infra/Dockerfile, e.g. --image {DEFAULT_IMAGE}",
        )
    pipeline = build_pipeline(image, data_uri)
    from kfp import compiler

    output = Path(output)
    with atomic_path(output) as tmp:  # same name: kfp picks the format from the suffix
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(tmp))
    return output


def run_local(
    preset: str, overrides: list[str], pipeline_root: Path, data_uri: str | None = None
) -> None:
    """Run the pipeline here with ``kfp.local.SubprocessRunner``, steps in this Python.

    Artifacts (data set, models, score tables) land under ``pipeline_root`` (an imported
    ``data_uri`` folder is copied there first); MLflow runs go where ``MLFLOW_TRACKING_URI``
    points, as for ``unmixlab run training``.

    Raises:
        UnmixlabError: ``kfp`` is not installed, or a step failed (its log is above).
    """
    pipeline = build_pipeline(data_uri=data_uri)
    from kfp import local

    root = Path(pipeline_root).resolve()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        workspace_root=str(root / "workspace"),
        raise_on_error=True,
    )
    with warnings.catch_warnings():
        # the runner warns that the image is not a Python image: it runs no image at all
        warnings.filterwarnings("ignore", "You may be attemping to run", RuntimeWarning)
        # and that cluster settings (display names, resources) do nothing here
        warnings.filterwarnings("ignore", ".*have no effect in the current local runner")
        log = StepLog()  # the steps' output, less their tracebacks
        try:
            with contextlib.redirect_stdout(log):
                pipeline(preset=preset, overrides=list(overrides))
        except RuntimeError as error:  # kfp.local: "Pipeline 'x' finished with status FAILURE"
            plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # kfp colours its messages
            cause = log.last_unmixlab_error()
            if cause is not None:  # the step's own one line, naming the bad file
                raise UnmixlabError(
                    f"a step of the Kubeflow pipeline failed: {cause.rstrip('.')}",
                    f"Fix that and run again (the steps' artifacts are under {pipeline_root})",
                ) from None
            raise UnmixlabError(
                f"the Kubeflow pipeline failed locally: {plain}",
                "Read the failed step's log above",
                pipeline_root,
            ) from error
