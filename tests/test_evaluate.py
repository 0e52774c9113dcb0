import json
import shutil
from importlib.metadata import version
from pathlib import Path
from urllib.parse import quote

import musdb
import museval
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipelines.cli import cli
from unmixlab import bsseval
from unmixlab.config import TrainConfig
from unmixlab.errors import UnmixlabError
from unmixlab.evaluate import METRICS, Evaluation, score_models
from unmixlab.model_io import write_separator_json
from unmixlab.synth import synthesize
from unmixlab.tracking.evaluation import log_evaluation
from unmixlab.trainer import train

pytestmark = pytest.mark.slow  # separation and scoring: not a unit test
museval_version = version("museval")


@pytest.fixture(scope="module")
def model_dir(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny vocals model (2 epochs) shared by this module's tests."""
    folder = tmp_path_factory.mktemp("eval")
    config = TrainConfig(
        root=synth_root, is_wav=True, target="vocals", epochs=2, batch_size=4,
        samples_per_track=4, seq_dur=1.0, nfft=512, nhop=128, hidden_size=16,
        sample_rate=16000, bandwidth=8000, seed=0, output=folder / "model",
        cache_dir=folder / "cache",
    )  # fmt: skip
    train(config)
    return config.run.output


def frame_median(frames: list[dict], metric: str) -> float:
    return float(np.nanmedian([float(frame["metrics"][metric]) for frame in frames]))


@pytest.fixture(scope="module")
def evaluation(synth_root: Path, model_dir: Path) -> Evaluation:
    """The model scored in two worker processes, with the accompaniment and the estimates."""
    out = model_dir.parent / "eval"
    return score_models(
        synth_root, model_dir, out_dir=out, workers=2, residual=True, keep_estimates=True
    )


def frame_scores(targets: list[dict], metric: str) -> np.ndarray:
    """One metric of every frame of every target of museval's JSON, ``(targets, frames)``."""
    return np.array([[float(f["metrics"][metric]) for f in t["frames"]] for t in targets])


def test_scores_match_a_direct_museval_call(synth_root: Path, evaluation: Evaluation):
    tracks = musdb.DB(root=str(synth_root), subsets="test", is_wav=True).tracks
    assert sorted(evaluation.tracks) == sorted(t.name for t in tracks) and len(tracks) == 2
    assert (evaluation.scorer, evaluation.scorer_version) == (bsseval.NAME, bsseval.VERSION)
    per_track = {}
    for track in tracks:
        folder = evaluation.per_track_dir.parent / "estimates" / "test" / track.name
        estimates = {p.stem: sf.read(p, always_2d=True)[0] for p in folder.glob("*.wav")}
        assert set(estimates) == {"vocals", "accompaniment"}
        direct = json.loads(museval.eval_mus_track(track, estimates).json)
        ours = json.loads((evaluation.per_track_dir / f"{track.name}.json").read_text())
        assert ours["unmixlab"]["scorer"] == bsseval.NAME
        assert [t["name"] for t in ours["targets"]] == [t["name"] for t in direct["targets"]]
        for metric in METRICS:  # museval's numbers, to float rounding
            want, got = (
                frame_scores(direct["targets"], metric),
                frame_scores(ours["targets"], metric),
            )
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], atol=0.05)
        per_track[track.name] = {
            t["name"]: {m: frame_median(t["frames"], m) for m in METRICS} for t in direct["targets"]
        }
    assert set(evaluation.aggregate) == {"vocals", "accompaniment"}
    for target in ("vocals", "accompaniment"):
        for metric in METRICS:
            expected = np.median([scores[target][metric] for scores in per_track.values()])
            assert evaluation.aggregate[target][metric] == pytest.approx(expected, abs=0.01)
            assert np.isfinite(evaluation.aggregate[target][metric])
    table = evaluation.table_path.read_text().splitlines()
    assert table[0] == "target,SDR,SIR,SAR,ISR" and table[1].startswith("vocals,")
    assert "| accompaniment |" in evaluation.markdown_path.read_text()


def test_the_museval_scorer_writes_museval_own_json(synth_root: Path, model_dir: Path, tmp_path):
    evaluation = score_models(
        synth_root, model_dir, out_dir=tmp_path, workers=1, keep_estimates=True,
        excerpt_seconds=0, scorer="museval",
    )  # fmt: skip
    assert (evaluation.scorer, evaluation.scorer_version) == ("museval", museval_version)
    for track in musdb.DB(root=str(synth_root), subsets="test", is_wav=True).tracks:
        folder = tmp_path / "estimates" / "test" / track.name
        estimates = {p.stem: sf.read(p, always_2d=True)[0] for p in folder.glob("*.wav")}
        direct = json.loads(museval.eval_mus_track(track, estimates).json)
        ours = json.loads((evaluation.per_track_dir / f"{track.name}.json").read_text())
        assert ours["targets"] == direct["targets"]
        assert ours["unmixlab"]["scorer"] == "museval"


def test_a_failed_evaluation_rerun_scores_only_the_missing_tracks(
    synth_root: Path, model_dir: Path, tmp_path: Path
):
    tracks = musdb.DB(root=str(synth_root), subsets="test", is_wav=True).tracks
    first, second = sorted(t.name for t in tracks)
    blocker = tmp_path / "test" / f"{second}.json"
    blocker.mkdir(parents=True)  # the second track's scores cannot be written: it fails
    with pytest.raises(OSError):
        score_models(synth_root, model_dir, out_dir=tmp_path, workers=1, excerpt_seconds=0)
    assert (tmp_path / "test" / f"{first}.json").is_file()
    blocker.rmdir()
    resumed = score_models(synth_root, model_dir, out_dir=tmp_path, workers=2, excerpt_seconds=0)
    assert resumed.reused == (first,)  # the second track alone was scored
    assert resumed.tracks == (first, second) and (tmp_path / "test" / f"{second}.json").is_file()
    again = score_models(synth_root, model_dir, out_dir=tmp_path, workers=2, excerpt_seconds=0)
    assert again.reused == (first, second) and again.aggregate == resumed.aggregate
    other = score_models(
        synth_root, model_dir, out_dir=tmp_path, workers=1, excerpt_seconds=0, scorer="museval"
    )
    assert other.reused == ()  # made with another scorer: scored again
    assert np.isclose(other.aggregate["vocals"]["SDR"], again.aggregate["vocals"]["SDR"], atol=0.01)


def test_a_16khz_model_is_scored_at_the_track_rate(model_dir: Path, tmp_path: Path):
    root = synthesize(tmp_path / "hq", tracks=1, seconds=2.0, seed=3, test_tracks=1)  # 44.1 kHz
    evaluation = score_models(
        root, model_dir, out_dir=tmp_path / "eval", workers=1, keep_estimates=True
    )
    (track,) = musdb.DB(root=str(root), subsets="test", is_wav=True).tracks
    estimate = tmp_path / "eval" / "estimates" / "test" / track.name / "vocals.wav"
    info = sf.info(estimate)
    assert (info.samplerate, info.frames) == (44100, track.audio.shape[0])
    assert np.isfinite(evaluation.aggregate["vocals"]["SDR"])


def test_bad_input_is_a_clear_error(synth_root: Path, model_dir: Path, tmp_path: Path):
    with pytest.raises(UnmixlabError, match="no model for target.*drums"):
        score_models(synth_root, model_dir, targets=["drums"], out_dir=tmp_path)
    with pytest.raises(UnmixlabError, match="data root does not exist"):
        score_models(tmp_path / "nowhere", model_dir, out_dir=tmp_path)
    with pytest.raises(UnmixlabError, match="no separator.json"):
        score_models(synth_root, tmp_path, out_dir=tmp_path)


def test_a_model_the_workers_cannot_load_stops_the_scoring(
    synth_root: Path, model_dir: Path, tmp_path: Path
):
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / "vocals.pth").write_bytes(b"not a checkpoint")
    # the workers load the models: their error reaches the caller (not endless respawns)
    with pytest.raises(UnmixlabError, match="vocals.pth"):
        score_models(synth_root, broken, out_dir=tmp_path / "out", workers=2)


def test_scores_are_logged_to_the_training_run(evaluation: Evaluation):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("eval")).info.run_id
    logged = log_evaluation(run_id, evaluation, targets=["vocals"])
    assert set(logged) == {f"test_{m.lower()}_vocals" for m in METRICS}
    tags = client.get_run(run_id).data.tags
    assert (tags["scorer"], tags["scorer_version"]) == (bsseval.NAME, bsseval.VERSION)
    metrics = client.get_run(run_id).data.metrics
    assert metrics["test_sdr_vocals"] == pytest.approx(evaluation.aggregate["vocals"]["SDR"])
    artifacts = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/scores.csv", "evaluation/scores.md", "evaluation/tracks"} <= artifacts


def test_listening_page_has_a_player_per_excerpt_beside_the_sdr(evaluation: Evaluation):
    page = (evaluation.listen_dir / "index.html").read_text()
    per_track = pd.read_csv(evaluation.tracks_path, index_col=["track", "target"])
    for track in evaluation.tracks:
        folder = evaluation.listen_dir / track
        assert sorted(p.name for p in folder.iterdir()) == [
            "accompaniment.mp3", "accompaniment.reference.mp3", "mixture.mp3",
            "vocals.mp3", "vocals.reference.mp3",
        ]  # fmt: skip
        info = sf.info(folder / "vocals.mp3")  # 4 s tracks: shorter than the 15 s excerpt
        assert (info.samplerate, info.channels) == (16000, 2)
        assert info.duration == pytest.approx(4.0, abs=0.1)
        for name in ("mixture", "vocals", "vocals.reference"):
            assert f'src="{quote(track)}/{name}.mp3"' in page
        assert f"{per_track.loc[(track, 'vocals'), 'SDR']:.2f}" in page
    assert page.count("<audio") == 5 * len(evaluation.tracks)


def test_listening_page_is_logged_with_links_through_the_mlflow_ui(
    evaluation: Evaluation, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_UI_URL", "https://mlflow.example.org/ui/")
    client = MlflowClient()
    run_id = client.create_run(
        client.create_experiment("listen"), run_name="h16 seed 0"
    ).info.run_id
    log_evaluation(run_id, evaluation, targets=["vocals"])
    folder = Path(client.download_artifacts(run_id, "evaluation/listen"))
    page = (folder / "index.html").read_text()
    assert "Listening: run h16 seed 0" in page
    track = evaluation.tracks[0]
    path = quote(f"evaluation/listen/{track}/vocals.mp3", safe="")
    link = f"https://mlflow.example.org/ui/get-artifact?path={path}&amp;run_uuid={run_id}"
    assert f'<audio controls preload="none" src="{link}">' in page
    assert page.count("<audio") == 5 * len(evaluation.tracks)
    assert sf.info(folder / track / "vocals.mp3").frames > 0
    sdr = evaluation.excerpts[0].stems[0]
    assert sdr.name == "vocals" and f"{sdr.sdr:.2f}" in page


def test_evaluate_command_scores_a_residual(synth_root: Path, model_dir: Path, tmp_path: Path):
    drums = tmp_path / "drums-model"  # the vocals weights, as a (poor) drums model
    drums.mkdir()
    for suffix in ("pth", "json"):
        shutil.copy(model_dir / f"vocals.{suffix}", drums / f"drums.{suffix}")
    write_separator_json(drums, 16000, 512, 128, 2)
    args = ["evaluate", "--root", str(synth_root), "--model", str(drums), "--is-wav"]
    args += ["--out", str(tmp_path / "out"), "--workers", "1", "--residual"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| drums |" in result.output and "| residual |" in result.output
    scores = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in scores] == ["target", "drums", "residual"]
    assert all(np.isfinite(float(v)) for line in scores[1:] for v in line.split(",")[1:])
