"""Promotion in the Model Registry and the champion served as a pyfunc model."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

from pipelines.cli import cli
from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.separator import load_separator
from unmixlab.tracking.pyfunc import BadAudio
from unmixlab.tracking.registry import lower_is_better, promote_best_run
from unmixlab.tracking.runs import train_tracked

pytestmark = pytest.mark.slow  # trainings and the registry: not a unit test

CHAMPION = "models:/unmixlab-vocals@champion"


def clip(seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    """A short stereo clip as soundfile reads it, ``(nb_frames, nb_channels)``."""
    return np.random.default_rng(0).uniform(-0.5, 0.5, (int(seconds * rate), 2)).astype(np.float32)


def tracked_with_sdr(config: TrainConfig, experiment: str, sdr: float) -> str:
    """Train one epoch in ``experiment`` and log ``test_sdr_vocals`` = ``sdr`` on the run."""
    run_id = train_tracked(config.updated(epochs=1), experiment=experiment).run_id
    MlflowClient().log_metric(run_id, "test_sdr_vocals", sdr)
    return run_id


def test_metric_direction_is_inferred_from_the_name():
    assert lower_is_better("best_valid_loss")
    assert lower_is_better("training_seconds")
    assert not lower_is_better("test_sdr_vocals")
    assert not lower_is_better("samples_per_second")


def test_better_model_takes_champion_worse_does_not(tiny_config: TrainConfig, tmp_path: Path):
    client = MlflowClient()
    weak = tracked_with_sdr(tiny_config, "weak", 1.0)
    strong_config = tiny_config.updated(output=tmp_path / "strong", seed=1)
    strong = tracked_with_sdr(strong_config, "strong", 3.0)

    first = promote_best_run("weak", "test_sdr_vocals", "vocals")
    assert (first.promoted, first.champion_value, first.candidate_value) == (True, None, 1.0)

    better = promote_best_run("strong", "test_sdr_vocals", "vocals")
    assert better.promoted and better.champion_value == 1.0 and better.version != first.version
    assert client.get_model_version_by_alias("unmixlab-vocals", "champion").run_id == strong

    result = CliRunner().invoke(
        cli,
        ["promote", "--experiment", "weak", "--metric", "test_sdr_vocals", "--target", "vocals"],
    )
    assert result.exit_code == 0, result.output
    assert f"v{first.version}: kept champion v{better.version}" in result.output
    champion = client.get_model_version_by_alias("unmixlab-vocals", "champion")
    assert champion.run_id == strong
    versions = client.search_model_versions("name = 'unmixlab-vocals'")
    assert sorted(v.run_id for v in versions) == sorted([weak, strong])  # no re-registration
    weak_name = client.get_run(weak).info.run_name
    assert client.get_model_version("unmixlab-vocals", first.version).description == (
        f"run {weak_name}: test_sdr_vocals 1"
    )
    worse = client.get_model_version("unmixlab-vocals", first.version).tags
    assert worse["promotion.decision"] == f"kept champion v{better.version}"
    assert (worse["promotion.candidate_value"], worse["promotion.champion_value"]) == ("1.0", "3.0")

    model = mlflow.pyfunc.load_model(CHAMPION)
    audio = clip()
    out = model.predict(pd.DataFrame({"audio": [audio.tolist()], "sample_rate": [16000]}))
    vocals = np.asarray(out["vocals"][0])
    assert vocals.shape == audio.shape and np.isfinite(vocals).all()  # (nb_frames, nb_channels)
    separator = load_separator(strong_config.run.output)
    expected = separator.separate(torch.from_numpy(audio.T.copy()), 16000)
    np.testing.assert_allclose(vocals, expected["vocals"].numpy().T, atol=1e-5)


def test_served_model_keeps_mono_mono_and_refuses_bad_clips_in_one_line(
    tiny_config: TrainConfig,
):
    tracked_with_sdr(tiny_config, "layouts", 1.0)
    promote_best_run("layouts", "test_sdr_vocals", "vocals")
    model = mlflow.pyfunc.load_model(CHAMPION)

    def predict(audio: object, rate: int = 16000) -> object:
        return model.predict(pd.DataFrame({"audio": [audio], "sample_rate": [rate]}))["vocals"][0]

    mono = clip()[:, 0]
    vocals = np.asarray(predict(mono.tolist()))
    assert vocals.shape == mono.shape and np.isfinite(vocals).all()
    single = np.asarray(predict(mono[:, None].tolist()))  # (nb_frames, 1) as always_2d gives it
    assert single.shape == (len(mono), 1)
    np.testing.assert_allclose(single[:, 0], vocals, atol=1e-6)

    refusals = {
        "that is (channels, frames); send (frames, channels)": clip().T.tolist(),
        "audio has 2 frames at 16000 Hz; the model needs at least 512 (32 ms": [[0.0, 0.1]] * 2,
        "of equal length": [[0.0, 0.1], [0.2]],
        "non-finite samples (nan at sample 0": [float("nan")] * 1000,
        "samples beyond +/-16 (full scale is 1; 1e+38 at sample 500": [0.0] * 500 + [1e38] * 500,
    }
    for message, audio in refusals.items():
        with pytest.raises(BadAudio, match=re.escape(message)) as refused:
            predict(audio)
        assert refused.value.get_http_status_code() == 400
        assert "\n" not in json.loads(refused.value.serialize_as_json())["message"]


def test_promote_without_candidates_says_why(tiny_config: TrainConfig):
    with pytest.raises(UnmixlabError, match="no MLflow experiment 'missing'"):
        promote_best_run("missing", "test_sdr_vocals", "vocals")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_champion_is_served_over_http(tiny_config: TrainConfig, tmp_path: Path):
    tracked_with_sdr(tiny_config, "serve", 2.0)
    assert promote_best_run("serve", "test_sdr_vocals", "vocals").promoted
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION, "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # starting, or a loaded machine
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        readme = (Path(__file__).parents[1] / "README.md").read_text()
        (example,) = re.findall(r"```python\n(.*?/invocations.*?)```", readme, re.S)
        ran = subprocess.run(
            [sys.executable, "-c", example.replace("5001", str(port))],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split()[-2:] == ["(88200,", "2)"]  # vocals as (frames, channels)

        too_short = {"dataframe_records": [{"audio": [0.0, 0.1], "sample_rate": 44100}]}
        response = requests.post(f"{url}/invocations", json=too_short, timeout=60)
        assert response.status_code == 400
        assert response.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "audio has 2 frames at 44100 Hz; the model needs at least 1412 "
            "(32 ms, one STFT window): send a longer clip",
        }
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn workers
        server.wait(timeout=30)
        log.close()
