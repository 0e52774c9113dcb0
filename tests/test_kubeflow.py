"""The Kubeflow pipeline compiles offline into a KFP v2 package that runs the unmixlab CLI."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp")
pytest.importorskip("kfp.kubernetes")

from pipelines import kubeflow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/unmixlab:test"
# executor -> the unmixlab sub-command it runs
STEPS = {
    "exec-synth-data": ["unmixlab", "data", "synth"],
    "exec-prepare-data": ["unmixlab", "prepare"],
    "exec-train-target": ["unmixlab", "train"],
    "exec-evaluate-model": ["unmixlab", "evaluate"],
    "exec-promote-model": ["unmixlab", "promote"],
}
SH_STEPS = {"exec-evaluate-model"}  # a shell wrapper around the command
MLFLOW_STEPS = {"exec-train-target", "exec-evaluate-model", "exec-promote-model"}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[dict, dict]:
    path = kubeflow.compile_training_pipeline(
        tmp_path_factory.mktemp("kfp") / "nested" / "training.yaml", IMAGE
    )
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


def loop_tasks(spec: dict) -> dict:
    return spec["components"]["comp-for-loop-4"]["dag"]["tasks"]


def test_every_step_runs_the_unmixlab_cli_in_the_image(package):
    spec, _ = package
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == set(STEPS) | {"exec-importer"}
    for name, command in STEPS.items():
        container = executors[name]["container"]
        if name in SH_STEPS:
            assert container["command"][:2] == ["sh", "-c"]
            assert f"exec {' '.join(command)} " in container["command"][2]
        else:
            assert container["command"] == command
        assert container["image"] == IMAGE


def test_step_arguments_follow_the_cli(package):
    spec, _ = package
    executors = spec["deploymentSpec"]["executors"]
    train = executors["exec-train-target"]["container"]["args"]
    assert train[train.index("--target") + 1] == "{{$.inputs.parameters['target']}}"
    assert train[train.index("--output") + 1] == "{{$.outputs.artifacts['model'].path}}"
    assert "--is-wav" in train
    assert train[train.index("--experiment") + 1] == "{{$.inputs.parameters['experiment']}}"
    evaluate = executors["exec-evaluate-model"]["container"]["args"]
    assert evaluate == [
        "{{$.inputs.artifacts['data'].path}}",
        "{{$.inputs.artifacts['model'].path}}",
        "{{$.inputs.parameters['target']}}",
        "{{$.outputs.artifacts['scores'].path}}",
    ]
    promote = executors["exec-promote-model"]["container"]["args"]
    assert promote[::2] == ["--experiment", "--metric", "--target"]
    # the metric evaluate logs: test_<metric>_<target>
    metric = json.loads(promote[3])["Concat"]
    assert metric == [
        "test_",
        "{{$.inputs.parameters['metric']}}",
        "_",
        "{{$.inputs.parameters['target']}}",
    ]
    synth = executors["exec-synth-data"]["container"]["args"]
    assert synth[0] == "{{$.outputs.artifacts['data'].path}}"
    assert synth[synth.index("--sample-rate") + 1] == "{{$.inputs.parameters['sample_rate']}}"


def test_evaluate_logs_to_the_run_the_training_recorded(tmp_path):
    """Run the evaluate step's shell script against a stub ``unmixlab``."""
    model = tmp_path / "model dir"
    model.mkdir()
    (model / "vocals.mlflow.json").write_text(json.dumps({"mlflow_run_id": "abc123"}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "args"
    stub = bin_dir / "unmixlab"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    stub.chmod(0o755)
    python_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(python_dir), "/usr/bin:/bin"])}
    args = ["/data", str(model), "vocals", "/scores"]
    subprocess.run(["sh", "-c", kubeflow.EVALUATE_SCRIPT, "evaluate", *args], env=env, check=True)
    assert record.read_text().splitlines() == [
        "evaluate",
        "--root",
        "/data",
        "--model",
        str(model),
        "--is-wav",
        "--targets",
        "vocals",
        "--out",
        "/scores",
        "--run-id",
        "abc123",
    ]
    # no recorded run: the step fails instead of scoring without logging
    (model / "vocals.mlflow.json").unlink()
    failed = subprocess.run(
        ["sh", "-c", kubeflow.EVALUATE_SCRIPT, "evaluate", *args], env=env, capture_output=True
    )
    assert failed.returncode != 0


def test_one_training_per_target_then_evaluate_then_promote(package):
    spec, _ = package
    root = spec["root"]
    loop = root["dag"]["tasks"]["for-loop-4"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--targets"
    assert set(loop["dependentTasks"]) == {"prepare-data", "condition-branches-1"}
    assert root["inputDefinitions"]["parameters"]["targets"]["defaultValue"] == ["vocals"]

    tasks = loop_tasks(spec)
    assert set(tasks) == {"train-target", "evaluate-model", "promote-model"}
    assert tasks["evaluate-model"]["dependentTasks"] == ["train-target"]
    assert tasks["promote-model"]["dependentTasks"] == ["evaluate-model"]
    model = tasks["evaluate-model"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model == {"outputArtifactKey": "model", "producerTask": "train-target"}
    for name in ("train-target", "promote-model"):
        target = tasks[name]["inputs"]["parameters"]["target"]
        assert target == {"componentInputParameter": "pipelinechannel--targets-loop-item"}


def test_data_is_synthesised_or_imported(package):
    spec, _ = package
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    conditions = {task["triggerPolicy"]["condition"] for task in branches.values()}
    assert "inputs.parameter_values['pipelinechannel--data_uri'] == ''" in conditions
    assert "synth-data" in spec["components"]["comp-condition-2"]["dag"]["tasks"]
    assert "importer" in spec["components"]["comp-condition-3"]["dag"]["tasks"]
    prepare = spec["root"]["dag"]["tasks"]["prepare-data"]
    assert prepare["inputs"]["artifacts"]["data"]["taskOutputArtifact"]["producerTask"] == (
        "condition-branches-1"
    )


def test_mlflow_settings_come_from_the_pod_environment(package):
    _, platform = package
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == MLFLOW_STEPS
    for config in executors.values():
        (config_map,) = config["configMapAsEnv"]
        assert config_map["configMapName"] == kubeflow.MLFLOW_CONFIG_MAP
        assert {item["envVar"] for item in config_map["keyToEnv"]} == {
            "MLFLOW_TRACKING_URI",
            "MLFLOW_S3_ENDPOINT_URL",
        }
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == kubeflow.MLFLOW_AUTH_SECRET
        assert secret["optional"] is True
    # no endpoint or credential is baked into the package
    spec, _ = package
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "env" not in executor.get("container", {})


def test_training_steps_are_never_served_from_cache(package):
    spec, _ = package
    for task in loop_tasks(spec).values():
        assert not task["cachingOptions"].get("enableCache", False)


def test_command_line_entry_point(tmp_path, capsys):
    out = tmp_path / "pipeline.yaml"
    kubeflow.main([str(out), "--image", "other/unmixlab:1.2.3"])
    assert capsys.readouterr().out.strip() == str(out)
    spec, _ = yaml.safe_load_all(out.read_text())
    images = {
        e["container"]["image"]
        for e in spec["deploymentSpec"]["executors"].values()
        if "container" in e
    }
    assert images == {"other/unmixlab:1.2.3"}
    experiment = spec["root"]["inputDefinitions"]["parameters"]["experiment"]
    assert experiment["defaultValue"] == "unmixlab"


def test_default_image_is_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert kubeflow.DEFAULT_IMAGE == f"unmixlab:{version}"


def test_importing_pipelines_does_not_need_kfp():
    code = "import sys, pipelines.kubeflow; sys.exit('kfp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
