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


STUDY_PIPELINE_NAME = "unmixlab-study"
PIPELINES = ("training", "study")


def _kfp():
    """``kfp.dsl``, ``kfp.kubernetes`` and the steps module, or one clear error."""
    try:
        from kfp import dsl, kubernetes

        from pipelines.kubeflow import steps
    except ImportError as error:
        raise UnmixlabError(
            f"the Kubeflow pipeline needs kfp and kfp-kubernetes ({error})",
            "install the extra: pip install 'unmixlab[kubeflow]'",
        ) from error
    return dsl, kubernetes, steps


def use_mlflow(task):
    """Point a task at the cluster's MLflow server through its pod environment; no caching."""
    _, kubernetes, _ = _kfp()
    kubernetes.use_config_map_as_env(
        task, MLFLOW_CONFIG_MAP, {name: name for name in MLFLOW_SETTINGS}
    )
    kubernetes.use_secret_as_env(
        task, MLFLOW_AUTH_SECRET, {name: name for name in MLFLOW_CREDENTIALS}, optional=True
    )
    task.set_caching_options(False)  # a rerun must train and log again, not reuse a result
    return task


def component(function, image: str):
    """A lightweight Python component of ``function`` running in ``image``.

    The image holds unmixlab and kfp (its ``kubeflow`` extra): nothing to pip install.
    """
    dsl, _, _ = _kfp()
    return dsl.component(function, base_image=image, install_kfp_package=False)


def data_set(image: str, data_uri: str | None, preset, overrides):
    """The pipeline's data set: ``data_uri`` imported, or the preset's synthesised."""
    dsl, _, steps = _kfp()
    if data_uri:
        source = dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
        return source.set_display_name("import-data").output
    source = component(steps.synth_data, image)(preset=preset, overrides=overrides)
    return source.set_display_name("synth-data").outputs["data"]


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
    dsl, _, steps = _kfp()
    prepare_data = component(steps.prepare_data, image)
    train_target = component(steps.train_target, image)
    evaluate_model = component(steps.evaluate_model, image)
    promote_model = component(steps.promote_model, image)

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
        data = data_set(image, data_uri, preset, overrides)
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


def build_study_pipeline(
    image: str = DEFAULT_IMAGE, data_uri: str | None = None, parallelism: int = 0
):
    """The study pipeline: plan and time, the trainings in a ``ParallelFor``, the report.

    The trainings write their model folders under ``output_dir`` and the report step
    streams some of them, so on a cluster ``output_dir`` must be a volume every step mounts.

    Args:
        image: the project image, holding unmixlab and kfp.
        data_uri: a MUSDB18-HQ folder to import; None synthesises the preset's data set.
        parallelism: trainings at once (0: as many as the cluster schedules).

    Raises:
        UnmixlabError: ``kfp`` or ``kfp-kubernetes`` is not installed.
    """
    dsl, _, steps = _kfp()
    start_study = component(steps.start_study, image)
    missing_trainings = component(steps.missing_trainings, image)
    train_study_run = component(steps.train_study_run, image)
    report_study = component(steps.report_study, image)

    @dsl.pipeline(
        name=STUDY_PIPELINE_NAME,
        description="A study of Open-Unmix configurations: timing pass, trainings in "
        "parallel, verdicts and report (MLflow).",
    )
    def study(
        preset: str = "seed-study-quick",
        overrides: list = [],  # noqa: B006 (KFP reads the default as a constant)
        output_dir: str = "runs/kubeflow-study",
    ):
        """Run every (configuration, seed) of a preset's study, then report on it.

        Args:
            preset: a study preset (``seed-study-quick``, ``seed-study``) or a YAML file.
            overrides: ``key=value`` settings, as ``--set`` takes.
            output_dir: where the model folders and the report go (a shared volume).
        """
        common = {"preset": preset, "overrides": overrides}
        data = data_set(image, data_uri, preset, overrides)
        start = start_study(**common, data=data, output_dir=output_dir)
        use_mlflow(start.set_display_name("plan-and-time")).set_cpu_request("2")
        run = {
            "parent_run_id": start.outputs["parent_run_id"],
            "run_dir": start.outputs["run_dir"],
        }
        todo = missing_trainings(**common, **run, data=data, key=start.outputs["key"])
        use_mlflow(todo.set_display_name("missing-trainings"))
        with dsl.ParallelFor(todo.output, parallelism=parallelism, name="per-training") as training:
            # everything an iteration needs is in its item: kfp's local runner resolves
            # other tasks' outputs inside a loop to the loop item
            train = train_study_run(**common, training=training, data=data)
            use_mlflow(train.set_display_name("train")).set_cpu_request("2")
            train.set_memory_request("8G")
        report = report_study(
            **common, **run, data=data, costs=start.outputs["costs"],
            started=start.outputs["started"],
        ).after(train)  # fmt: skip
        use_mlflow(report.set_display_name("report")).set_cpu_request("2")

    return study


def builder(pipeline: str):
    """The build function of ``pipeline`` (``training`` or ``study``)."""
    return {"training": build_pipeline, "study": build_study_pipeline}[pipeline]


def compile_pipeline(
    output: Path,
    image: str = DEFAULT_IMAGE,
    data_uri: str | None = None,
    pipeline: str = "training",
    parallelism: int = 0,
) -> Path:
    """Compile ``pipeline`` (training or study) to a KFP v2 YAML package at ``output``.

    ``parallelism`` bounds the study's trainings at once (0: no bound); its folder is created.

    Raises:
        UnmixlabError: ``kfp`` or ``kfp-kubernetes`` is not installed, ``image`` is blank,
            or ``output`` cannot be written (disk full, read-only).
    """
    if not image.strip():
        raise UnmixlabError(
            "--image is empty: the steps would have no image to run in",
            f"Pass the image built from infra/Dockerfile, e.g. --image {DEFAULT_IMAGE}",
        )
    options = {"parallelism": parallelism} if pipeline == "study" else {}
    built = builder(pipeline)(image, data_uri, **options)
    from kfp import compiler

    output = Path(output)
    with atomic_path(output) as tmp:  # same name: kfp picks the format from the suffix
        compiler.Compiler().compile(pipeline_func=built, package_path=str(tmp))
    return output


def run_local(
    preset: str,
    overrides: list[str],
    pipeline_root: Path,
    data_uri: str | None = None,
    pipeline: str = "training",
) -> None:
    """Run ``pipeline`` here with ``kfp.local.SubprocessRunner``, steps in this Python.

    Artifacts (data set, models, score tables) land under ``pipeline_root`` (an imported
    ``data_uri`` folder is copied there first; the study's models and report under its
    ``study/``); MLflow runs go where ``MLFLOW_TRACKING_URI`` points, as for
    ``unmixlab run training``.

    Raises:
        UnmixlabError: ``kfp`` is not installed, or a step failed (its log is above).
    """
    built = builder(pipeline)(data_uri=data_uri)
    from kfp import local

    root = Path(pipeline_root).resolve()
    arguments = {"output_dir": str(root / "study")} if pipeline == "study" else {}
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
                built(preset=preset, overrides=list(overrides), **arguments)
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
