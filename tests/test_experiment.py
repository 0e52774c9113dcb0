import json
from pathlib import Path

import pytest

from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.experiment import (
    ExperimentConfig,
    available_presets,
    experiment_schema,
    load_preset,
)


def test_each_flow_lists_the_presets_made_for_it():
    training = available_presets(flow="training")
    assert {"quickstart", "umx"} <= set(training) and "tune-quickstart" not in training
    assert available_presets(flow="tuning") == ["tune-quickstart"]
    assert {"seed-study", "seed-study-quick"} <= set(available_presets(flow="study"))
    flows = ("training", "tuning", "study")
    assert sorted(sum((available_presets(flow=f) for f in flows), [])) == sorted(
        available_presets()
    )


def test_shipped_presets_load():
    assert {"quickstart", "umx"} <= set(available_presets())
    quick = load_preset("quickstart")
    assert quick.name == "quickstart"
    assert quick.targets == ("vocals",)
    assert quick.data.synth is not None and quick.data.is_wav
    assert quick.train.data.sample_rate == quick.data.synth.sample_rate == 16000
    assert quick.promote.metric_for("vocals") == "test_sdr_vocals"
    umx = load_preset("umx", ["data.root=/data/musdb18"])
    assert umx.targets == ("vocals", "drums", "bass", "other")
    assert umx.train == TrainConfig()  # the reference Open-Unmix defaults
    assert umx.data.root == Path("/data/musdb18")


def test_overrides_use_dotted_keys_and_yaml_values():
    config = load_preset(
        "quickstart",
        [
            "train.hidden_size=128",
            "train.lr=1e-4",
            "train.unidirectional=true",
            "targets=[vocals, drums]",
            "data.synth.tracks=3",
            "evaluate.workers=1",
            "promote.enabled=false",
        ],
    )
    assert config.train.model.hidden_size == 128
    assert config.train.optim.lr == pytest.approx(1e-4)
    assert config.train.model.unidirectional is True
    assert config.targets == ("vocals", "drums")
    assert config.data.synth.tracks == 3
    assert config.evaluate.workers == 1
    assert not config.promote.enabled


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.hiden_size=128", "unknown setting 'train.hiden_size'.*hidden_size"),
        ("data.synth.trackz=3", "unknown setting 'data.synth.trackz'.*tracks"),
        ("evaluat.workers=1", "unknown setting 'evaluat'"),
        ("train.target=drums", "set targets instead of train.target"),
        ("train.root=/x", "set data.root instead of train.root"),
        ("evaluate.workers=0", "evaluate.workers"),
        ("targets=[vocals, voice]", "targets"),
        ("hidden_size", "is not key=value"),
        ("data.root.deeper=1", "data.root is a value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str):
    with pytest.raises(UnmixlabError, match=message):
        load_preset("quickstart", [override])


def test_a_mistyped_key_in_a_preset_file_is_an_error(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("targets: [bass]\ndata:\n  root: data\ntrain:\n  epoch: 3\n")
    with pytest.raises(UnmixlabError, match="unknown setting 'train.epoch'") as error:
        load_preset(path)
    assert error.value.path == path
    path.write_text("targets: [bass]\ndata:\n  root: data\ntrain:\n  epochs: 3\n")
    config = load_preset(path)
    assert config.name == "mine" and config.train.run.epochs == 3


def test_umx_needs_a_root_and_unknown_presets_are_listed():
    with pytest.raises(UnmixlabError, match="data.root is required"):
        load_preset("umx")
    with pytest.raises(UnmixlabError, match="no preset named 'nope'.*quickstart"):
        load_preset("nope")


def test_train_config_fills_in_what_the_experiment_derives(tmp_path: Path):
    config = load_preset("quickstart", [f"data.cache_dir={tmp_path / 'cache'}"])
    train = config.train_config("drums", tmp_path / "model")
    assert isinstance(train, TrainConfig)
    assert (train.data.root, train.data.is_wav, train.run.target) == (
        Path("data/quickstart"),
        True,
        "drums",
    )
    assert train.run.output == tmp_path / "model" and train.data.cache_dir == tmp_path / "cache"
    assert train.model.hidden_size == config.train.model.hidden_size


def test_config_is_frozen_and_schema_exports():
    config = load_preset("quickstart")
    with pytest.raises(ValueError):
        config.targets = ("bass",)
    schema = experiment_schema()
    assert {"data", "train", "evaluate", "promote", "targets"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    json.dumps(schema)
    assert ExperimentConfig.model_validate(config.model_dump()) == config


@pytest.mark.slow
def test_loading_a_preset_imports_no_scipy_mlflow_or_optuna():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from unmixlab.experiment import load_preset\n"
        "load_preset('seed-study', ['data.root=/nowhere'])\n"
        "print(sorted(m for m in ('scipy', 'mlflow', 'optuna') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
