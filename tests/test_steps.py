"""The steps layer's contracts: every evaluate setting reaches the scoring and the CLI."""

import inspect
import json
from pathlib import Path

from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.commands.options import flag_name
from unmixlab.evaluate import score_models
from unmixlab.listening import excerpt_window
from unmixlab.step_settings import EvaluateSettings
from unmixlab.steps.evaluate import scoring_options
from unmixlab.steps.train import TrainedModel


def test_every_evaluate_setting_is_a_scoring_argument_and_a_flag():
    settings = EvaluateSettings(excerpt_start=3.0, residual=True, device="cpu")
    options = scoring_options(settings, device="cuda")
    assert set(options) <= set(inspect.signature(score_models).parameters)
    assert options["excerpt_start"] == 3.0 and options["residual"] is True
    assert options["device"] == "cpu"  # the section's own device wins over the training's
    assert scoring_options(EvaluateSettings(), device="cuda")["device"] == "cuda"

    page = CliRunner().invoke(cli, ["evaluate", "--help"], terminal_width=200).output
    for name in EvaluateSettings.model_fields:
        if name != "enabled":
            assert flag_name(name) in page, name


def test_a_bad_evaluate_flag_names_the_flag():
    result = CliRunner().invoke(
        cli, ["evaluate", "--root", ".", "--model", ".", "--excerpt-start", "-1"]
    )
    assert "--excerpt-start" in str(result.exception)


def test_excerpt_window_starts_where_asked_and_stays_inside_the_track():
    rate = 100
    assert excerpt_window(1000, rate, 2.0) == slice(400, 600)  # the middle by default
    assert excerpt_window(1000, rate, 2.0, start=1.0) == slice(100, 300)
    assert excerpt_window(1000, rate, 2.0, start=9.5) == slice(800, 1000)  # moved back
    assert excerpt_window(150, rate, 2.0, start=1.0) == slice(0, 150)  # shorter: whole


def test_a_trained_model_survives_an_engines_metadata(tmp_path: Path):
    model = TrainedModel(
        target="vocals",
        run_id="abc",
        model_dir=tmp_path / "a",
        model_uri=None,
        device="cpu",
        training_seconds=1.5,
        best_valid_loss=0.25,
        best_epoch=2,
        epochs_trained=3,
        epoch_seconds=(0.5, 0.5, 0.5),
    )
    metadata = json.loads(json.dumps(model.as_metadata()))  # what Kubeflow stores
    assert TrainedModel.from_metadata(metadata, tmp_path / "a") == model
