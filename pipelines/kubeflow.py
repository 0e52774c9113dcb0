"""Compile the training pipeline for Kubeflow Pipelines (KFP v2) to a YAML package.

Each step is a container component that runs the ``unmixlab`` command line in the project
image, so Kubeflow executes the same code as the CLI, Prefect and the tests:

    data (synth, or import ``data_uri``) ─► prepare ─► for each target: train ─► evaluate ─► promote

``prepare`` validates the data once, before any training starts; each training pod decodes
its own cache, since the cache fingerprint includes file times, which differ from pod to pod.
Evaluation logs ``test_<metric>_<target>`` to the training's MLflow run, and ``promote``
compares that metric across the experiment's runs.

The pods read MLflow settings from the cluster, never from the compiled YAML: the ConfigMap
``unmixlab-mlflow`` supplies ``MLFLOW_TRACKING_URI`` and ``MLFLOW_S3_ENDPOINT_URL``, and the
optional Secret ``unmixlab-mlflow-auth`` supplies ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` for a server behind basic auth (see ``infra/kubernetes.md``).

``kfp`` and ``kfp-kubernetes`` are the optional ``kubeflow`` extra; they are imported only when
a pipeline is compiled, so importing ``pipelines`` never needs them.

Usage::

    python -m pipelines.kubeflow unmixlab-training.yaml --image registry.example.com/unmixlab:0.1.0
"""

import argparse
from pathlib import Path

from unmixlab.errors import UnmixlabError

DEFAULT_IMAGE = "unmixlab:0.1.0"
PIPELINE_NAME = "unmixlab-training"
MLFLOW_CONFIG_MAP = "unmixlab-mlflow"
MLFLOW_AUTH_SECRET = "unmixlab-mlflow-auth"
# environment variable -> key in the ConfigMap / Secret (the same names)
MLFLOW_SETTINGS = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL")
MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# sh -c script of the evaluate step; arguments: data folder, model folder, target, scores folder.
# `unmixlab train` records its MLflow run in MODEL/<target>.mlflow.json; the scores go to it.
EVALUATE_SCRIPT = """\
set -e
read_run='import json, sys; print(json.load(open(sys.argv[1]))["mlflow_run_id"])'
run_id="$(python -c "$read_run" "$2/$3.mlflow.json")"
exec unmixlab evaluate --root "$1" --model "$2" --is-wav --targets "$3" --out "$4" \\
    --run-id "$run_id"
"""


def compile_training_pipeline(output: Path, image: str = DEFAULT_IMAGE) -> Path:
    """Build the KFP v2 training pipeline and compile it to a YAML package.

    Args:
        output: Path of the YAML file to write; its folder is created when missing.
        image: Container image holding the ``unmixlab`` command (``infra/Dockerfile``).

    Returns:
        The path of the written YAML package.

    Raises:
        UnmixlabError: ``kfp`` or ``kfp-kubernetes`` is not installed.
    """
    try:
        from kfp import compiler, dsl, kubernetes
    except ImportError as error:
        raise UnmixlabError(
            f"compiling a Kubeflow pipeline needs kfp and kfp-kubernetes ({error})",
            "install the extra: pip install 'unmixlab[kubeflow]'",
        ) from error

    @dsl.container_component
    def synth_data(
        tracks: int, seconds: float, seed: int, sample_rate: int, data: dsl.Output[dsl.Dataset]
    ):
        """Write a synthetic MUSDB18-HQ folder (train and test splits)."""
        return dsl.ContainerSpec(
            image=image,
            command=["unmixlab", "data", "synth"],
            args=[
                data.path,
                "--tracks",
                tracks,
                "--seconds",
                seconds,
                "--seed",
                seed,
                "--sample-rate",
                sample_rate,
            ],
        )

    @dsl.container_component
    def prepare_data(data: dsl.Input[dsl.Dataset], sample_rate: int):
        """Validate the data set and print its fingerprint before any training starts."""
        return dsl.ContainerSpec(
            image=image,
            command=["unmixlab", "prepare"],
            args=["--root", data.path, "--is-wav", "--sample-rate", sample_rate],
        )

    @dsl.container_component
    def train_target(
        data: dsl.Input[dsl.Dataset],
        target: str,
        experiment: str,
        sample_rate: int,
        epochs: int,
        batch_size: int,
        hidden_size: int,
        samples_per_track: int,
        seq_dur: float,
        seed: int,
        model: dsl.Output[dsl.Model],
    ):
        """Train one Open-Unmix target model, tracked as one MLflow run."""
        return dsl.ContainerSpec(
            image=image,
            command=["unmixlab", "train"],
            args=[
                "--root",
                data.path,
                "--is-wav",
                "--target",
                target,
                "--experiment",
                experiment,
                "--sample-rate",
                sample_rate,
                "--epochs",
                epochs,
                "--batch-size",
                batch_size,
                "--hidden-size",
                hidden_size,
                "--samples-per-track",
                samples_per_track,
                "--seq-dur",
                seq_dur,
                "--seed",
                seed,
                "--output",
                model.path,
            ],
        )

    @dsl.container_component
    def evaluate_model(
        data: dsl.Input[dsl.Dataset],
        model: dsl.Input[dsl.Model],
        target: str,
        scores: dsl.Output[dsl.Artifact],
    ):
        """Score the test tracks with museval and log the scores to the training's run."""
        return dsl.ContainerSpec(
            image=image,
            command=["sh", "-c", EVALUATE_SCRIPT, "unmixlab-evaluate"],
            args=[data.path, model.path, target, scores.path],
        )

    @dsl.container_component
    def promote_model(experiment: str, metric: str, target: str):
        """Move the registry alias ``champion`` to the best run if it beats the current one."""
        return dsl.ContainerSpec(
            image=image,
            command=["unmixlab", "promote"],
            args=[
                "--experiment",
                experiment,
                # evaluate logs test_<metric>_<target>, e.g. test_sdr_vocals
                "--metric",
                dsl.ConcatPlaceholder(["test_", metric, "_", target]),
                "--target",
                target,
            ],
        )

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
        targets: list = ["vocals"],  # noqa: B006 (KFP reads the default as a constant)
        experiment: str = "unmixlab",
        data_uri: str = "",
        synth_tracks: int = 8,
        synth_seconds: float = 12.0,
        synth_seed: int = 0,
        sample_rate: int = 44100,
        epochs: int = 10,
        batch_size: int = 16,
        hidden_size: int = 512,
        samples_per_track: int = 64,
        seq_dur: float = 6.0,
        seed: int = 42,
        promote_metric: str = "sdr",
    ):
        """Train, evaluate and promote one model per target.

        Args:
            targets: Sources to separate, each trained in parallel.
            experiment: MLflow experiment of the training runs, searched by ``promote``.
            data_uri: MUSDB18-HQ folder in the pipeline's object store (``minio://...`` or
                ``s3://...``); empty makes a synthetic data set instead.
            synth_tracks: Train tracks of the synthetic data set.
            synth_seconds: Length of each synthetic track in seconds.
            synth_seed: Seed of the synthetic data set.
            sample_rate: Sample rate of the data and the models, in Hz.
            epochs: Maximum training epochs.
            batch_size: Training batch size.
            hidden_size: LSTM hidden size.
            samples_per_track: Training chunks per track per epoch.
            seq_dur: Training chunk length in seconds.
            seed: Training seed.
            promote_metric: museval metric ``promote`` compares (sdr, sir, sar or isr).
        """
        with dsl.If(data_uri == "", name="synthetic-data"):
            synth = synth_data(
                tracks=synth_tracks, seconds=synth_seconds, seed=synth_seed, sample_rate=sample_rate
            )
            synth.set_display_name("synth-data")
        with dsl.Else(name="imported-data"):
            imported = dsl.importer(
                artifact_uri=data_uri, artifact_class=dsl.Dataset, reimport=False
            )
            imported.set_display_name("import-data")
        data = dsl.OneOf(synth.outputs["data"], imported.output)

        prepare = prepare_data(data=data, sample_rate=sample_rate).set_display_name("prepare")

        with dsl.ParallelFor(targets, name="per-target") as target:
            train = train_target(
                data=data,
                target=target,
                experiment=experiment,
                sample_rate=sample_rate,
                epochs=epochs,
                batch_size=batch_size,
                hidden_size=hidden_size,
                samples_per_track=samples_per_track,
                seq_dur=seq_dur,
                seed=seed,
            )
            use_mlflow(train.set_display_name("train").after(prepare))
            train.set_cpu_request("2").set_memory_request("8G")

            evaluate = evaluate_model(data=data, model=train.outputs["model"], target=target)
            use_mlflow(evaluate.set_display_name("evaluate"))
            evaluate.set_cpu_request("2").set_memory_request("8G")

            promote = promote_model(experiment=experiment, metric=promote_metric, target=target)
            use_mlflow(promote.set_display_name("promote").after(evaluate))

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=training, package_path=str(output))
    return output


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m pipelines.kubeflow OUT.yaml [--image IMAGE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.kubeflow", description="Compile the KFP training pipeline."
    )
    parser.add_argument("output", type=Path, help="YAML package to write")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="image with the unmixlab CLI")
    args = parser.parse_args(argv)
    try:
        path = compile_training_pipeline(args.output, args.image)
    except UnmixlabError as error:
        parser.exit(2, f"error: {error}\n")
    print(path)


if __name__ == "__main__":
    main()
