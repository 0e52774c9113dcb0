"""One MUSDB track scored by unmixlab's BSS Eval the way museval.eval_mus_track scores it."""

import json
from pathlib import Path

import musdb
import museval
import numpy as np
import pytest

from unmixlab import bsseval
from unmixlab.scoring import Stamp, read_scores, score_track, write_scores


@pytest.fixture(scope="module")
def track(synth_root: Path) -> musdb.MultiTrack:
    """The first synthetic test track (4 s at 16 kHz)."""
    return musdb.DB(root=str(synth_root), subsets="test", is_wav=True).tracks[0]


def estimates_of(track: musdb.MultiTrack, names: list[str]) -> dict[str, np.ndarray]:
    """Noisy float32 estimates of the named targets, ``(nb_timesteps, nb_channels)`` each."""
    rng = np.random.default_rng(0)
    return {
        name: (track.targets[name].audio + 0.05 * rng.standard_normal(track.audio.shape)).astype(
            np.float32
        )
        for name in names
    }


@pytest.mark.slow  # museval's 512-tap solves, several seconds a group
def test_a_track_is_scored_in_museval_groups_with_museval_numbers(track: musdb.MultiTrack):
    # vocals and accompaniment are a pair of their own; drums is scored with vocals
    estimates = estimates_of(track, ["drums", "vocals", "accompaniment"])
    ours = json.loads(score_track(track, estimates, "unmixlab").json)
    direct = json.loads(museval.eval_mus_track(track, estimates).json)
    assert [t["name"] for t in ours["targets"]] == ["drums", "vocals", "accompaniment"]
    assert [t["name"] for t in ours["targets"]] == [t["name"] for t in direct["targets"]]
    for mine, theirs in zip(ours["targets"], direct["targets"], strict=True):
        for metric in ("SDR", "SIR", "ISR", "SAR"):
            got = np.array([float(f["metrics"][metric]) for f in mine["frames"]])
            want = np.array([float(f["metrics"][metric]) for f in theirs["frames"]])
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], atol=0.05)


@pytest.mark.slow
def test_scores_are_read_back_only_with_the_same_settings(track: musdb.MultiTrack, tmp_path):
    store = score_track(track, estimates_of(track, ["vocals", "accompaniment"]), "unmixlab")
    path = write_scores(tmp_path / "track.json", store, Stamp(bsseval.NAME, "1", "abc"))
    museval.TrackStore(track.name).validate()  # the stamp keeps museval's schema
    frames = read_scores(path, track.name, "abc")
    assert frames is not None and set(frames["target"]) == {"vocals", "accompaniment"}
    assert frames["score"].equals(store.df["score"])
    assert read_scores(path, track.name, "other settings") is None
    assert read_scores(tmp_path / "missing.json", track.name, "abc") is None
    path.write_text('{"targets": [')  # a torn file from elsewhere: scored again
    assert read_scores(path, track.name, "abc") is None
