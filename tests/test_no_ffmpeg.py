"""GPU nodes often lack ffmpeg: MUSDB18-HQ wav trains without it, .stem.mp4 says what it needs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TRAIN_WITHOUT_FFMPEG = """
import sys
from unmixlab.config import TrainConfig
from unmixlab.data.tracks import official_validation_tracks
from unmixlab.trainer import train
root, out = sys.argv[1], sys.argv[2]
assert official_validation_tracks(), "musdb's validation list is read without musdb"
result = train(TrainConfig(
    root=root, is_wav=True, epochs=1, batch_size=4, samples_per_track=2, seq_dur=1.0,
    nfft=512, nhop=128, hidden_size=16, sample_rate=16000, bandwidth=8000,
    output=out, cache=sys.argv[3] == "cache", device="cpu",
))
assert result.epochs_trained == 1
print(sorted(m for m in sys.modules if m.split(".")[0] in ("musdb", "stempeg")))
"""


def without_ffmpeg(tmp_path: Path) -> dict[str, str]:
    """The environment with a PATH holding no ffmpeg or ffprobe (python is called by path)."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "PATH": str(empty)}


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["cache", "no-cache"])
def test_wav_trains_without_ffmpeg(synth_root: Path, tmp_path: Path, cache: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_WITHOUT_FFMPEG, str(synth_root), str(tmp_path / "m"), cache],
        env=without_ffmpeg(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"  # neither musdb nor stempeg imported


@pytest.mark.slow
def test_stems_without_ffmpeg_fail_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "root" / "train").mkdir(parents=True)
    (tmp_path / "root" / "train" / "song.stem.mp4").write_bytes(b"\0" * 64)
    done = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "prepare"]
        + ["--root", str(tmp_path / "root")],
        env=without_ffmpeg(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "needs ffmpeg and ffprobe on PATH" in done.stderr
    assert "--is-wav" in done.stderr
