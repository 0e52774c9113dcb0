"""The Kubeflow pipeline as compiled for a cluster (run locally by kfp: test_engine_parity)."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp")
pytest.importorskip("kfp.kubernetes")

from pipelines.kubeflow import pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/unmixlab:test"
# executor -> the unmixlab steps its body calls (the ones the CLI and the Prefect tasks call)
STEPS = {
    "exec-synth-data": ["load_preset(", "synthesize_data("],
    "exec-prepare-data": ["load_preset(", "prepare_data("],
    "exec-train-target": ["load_preset(", "train_model("],
    "exec-evaluate-model": ["load_preset(", "evaluate_models("],
    "exec-promote-model": ["load_preset(", "promote("],
}
MLFLOW_STEPS = {"exec-train-target", "exec-evaluate-model", "exec-promote-model"}
CLI = [sys.executable, "-c", "from pipelines.cli import main; main()"]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[dict, dict]:
    path = pipeline.compile_pipeline(
        tmp_path_factory.mktemp("kfp") / "nested" / "training.yaml", IMAGE
    )
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


def loop_tasks(spec: dict) -> dict:
    (loop,) = [c for name, c in spec["components"].items() if name.startswith("comp-for-loop")]
    return loop["dag"]["tasks"]


def test_every_step_is_a_python_component_calling_unmixlab_in_the_image(package):
    spec, _ = package
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == set(STEPS)
    for name, calls in STEPS.items():
        container = executors[name]["container"]
        assert container["image"] == IMAGE
        assert "kfp.dsl.executor_main" in container["command"][2]
        assert "pip install" not in " ".join(container["command"])  # the image has it all
        source = container["command"][3]
        for call in calls:
            assert call in source, (name, call)
        function = name.removeprefix("exec-").replace("-", "_")
        assert container["args"][-2:] == ["--function_to_execute", function]


def test_steps_pass_datasets_models_and_metrics(package):
    spec, _ = package
    outputs = {
        name: {k: v["artifactType"]["schemaTitle"] for k, v in c["outputDefinitions"].get(
            "artifacts", {}).items()}
        for name, c in spec["components"].items() if "executorLabel" in c
    }  # fmt: skip
    assert outputs["comp-synth-data"] == {"data": "system.Dataset"}
    assert outputs["comp-train-target"] == {"model": "system.Model"}
    assert outputs["comp-evaluate-model"] == {
        "scores": "system.Metrics",
        "tables": "system.Artifact",
    }

    tasks = loop_tasks(spec)
    assert set(tasks) == {"train-target", "evaluate-model", "promote-model"}
    model = tasks["evaluate-model"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model == {"outputArtifactKey": "model", "producerTask": "train-target"}
    scores = tasks["promote-model"]["inputs"]["artifacts"]["scores"]["taskOutputArtifact"]
    assert scores == {"outputArtifactKey": "scores", "producerTask": "evaluate-model"}
    # one iteration per target the prepare step reads from the preset
    (loop,) = [t for n, t in spec["root"]["dag"]["tasks"].items() if n.startswith("for-loop")]
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert items.startswith("pipelinechannel--prepare-data-Output")
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["preset"]["defaultValue"] == "quickstart"
    assert parameters["overrides"]["parameterType"] == "LIST"


def test_mlflow_settings_come_from_the_pod_environment(package):
    spec, platform = package
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == MLFLOW_STEPS
    for config in executors.values():
        (config_map,) = config["configMapAsEnv"]
        assert config_map["configMapName"] == pipeline.MLFLOW_CONFIG_MAP
        assert {item["envVar"] for item in config_map["keyToEnv"]} == set(pipeline.MLFLOW_SETTINGS)
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == pipeline.MLFLOW_AUTH_SECRET
        assert secret["optional"] is True
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "env" not in executor["container"]  # no endpoint or credential baked in
    for task in loop_tasks(spec).values():
        assert not task["cachingOptions"].get("enableCache", False)


@pytest.mark.slow
def test_compile_command_with_imported_data(tmp_path):
    out = tmp_path / "pipeline.yaml"
    result = subprocess.run(
        [*CLI, "kubeflow", "compile", str(out), "--image", "other/unmixlab:1.2.3",
         "--data-uri", "s3://bucket/musdb18hq"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    spec, _ = yaml.safe_load_all(out.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert "exec-synth-data" not in executors
    assert executors["exec-importer"]["importer"]["artifactUri"]["constant"] == (
        "s3://bucket/musdb18hq"
    )
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {"other/unmixlab:1.2.3"}


def test_default_image_is_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pipeline.DEFAULT_IMAGE == f"unmixlab:{version}"


@pytest.mark.slow
def test_importing_pipelines_does_not_need_kfp():
    code = (
        "import sys, pipelines.kubeflow.pipeline, pipelines.commands.kubeflow;"
        " sys.exit('kfp' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.slow
def test_run_local_without_data_names_the_option_in_one_line(tmp_path: Path):
    result = subprocess.run(
        [*CLI, "kubeflow", "run-local", "--preset", "umx", "--set", "data.root=/nowhere"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "preset 'umx' has no data.synth" in line and "--data-uri" in line
    assert not (tmp_path / "runs").exists()  # nothing started


def test_the_study_pipeline_fans_its_trainings_out_with_a_bounded_parallel_for(tmp_path):
    path = pipeline.compile_pipeline(tmp_path / "study.yaml", IMAGE, None, "study", 3)
    spec, platform = yaml.safe_load_all(path.read_text())
    root = spec["root"]["dag"]["tasks"]
    (loop,) = [task for name, task in root.items() if name.startswith("for-loop")]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert "missing-trainings" in items  # only what has no complete run is trained
    assert set(loop_tasks(spec)) == {"train-study-run"}
    assert "for-loop-1" in root["report-study"]["dependentTasks"]  # after every training
    executors = spec["deploymentSpec"]["executors"]
    calls = {
        "exec-start-study": ["timing_pass(", "start_parent_run(", "study_key("],
        "exec-missing-trainings": ["study_records(", "missing_runs("],
        "exec-train-study-run": ["train_study_run as train_one", "train_one("],
        "exec-report-study": ["report_step(", "parent.end("],
    }
    for name, needed in calls.items():
        source = executors[name]["container"]["command"][3]
        assert all(call in source for call in needed), name
    mlflow = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {f"exec-{n}" for n in ("start-study", "train-study-run", "report-study")} <= set(mlflow)
