"""The synthetic MUSDB18-HQ-format data set: layout, exact mixtures, determinism, sound."""

import hashlib
import re
from pathlib import Path

import musdb
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import unmixlab.synth
from pipelines.cli import cli
from unmixlab.config import TARGETS as STEMS
from unmixlab.errors import UnmixlabError
from unmixlab.synth import synthesize

SR = 16000
SECONDS = 4.0
NAME = re.compile(r"^Synth \d{3} - [A-Za-z ]+ in [A-G]( sharp| flat)? (major|minor)$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "musdb"
    return synthesize(root, tracks=2, seconds=SECONDS, seed=1, sample_rate=SR)


def tracks_of(root: Path, subset: str = "train") -> list[Path]:
    return sorted((root / subset).iterdir())


def read(track: Path, stem: str) -> np.ndarray:
    """(nb_timesteps, 2) int16 samples."""
    audio, _ = sf.read(track / f"{stem}.wav", dtype="int16")
    return audio


def spectrum(root: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and power spectrum of a stem's mono sum over all train tracks."""
    power = 0.0
    for track in tracks_of(root):
        mono = read(track, stem).astype(float).mean(axis=1) / 32768
        power = power + np.abs(np.fft.rfft(mono)) ** 2
    return np.fft.rfftfreq(round(SECONDS * SR), 1 / SR), power


def band(freqs: np.ndarray, power: np.ndarray, low: float, high: float) -> float:
    return power[(freqs >= low) & (freqs < high)].sum() / power.sum()


def centroid(freqs: np.ndarray, power: np.ndarray) -> float:
    return (freqs * power).sum() / power.sum()


def digest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*.wav"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_layout_and_subsets(dataset):
    train, test = tracks_of(dataset, "train"), tracks_of(dataset, "test")
    assert sorted(p.name for p in dataset.iterdir()) == ["test", "train"]
    assert len(train) == 2 and len(test) == 2  # test_tracks defaults to max(2, tracks // 4)
    assert not {p.name for p in train} & {p.name for p in test}
    for track in train + test:
        assert NAME.match(track.name), track.name
        assert sorted(p.name for p in track.iterdir()) == sorted(
            f"{name}.wav" for name in ("mixture", *STEMS)
        )
    assert [p.name for p in dataset.parent.iterdir()] == ["musdb"]  # no temp folder left


def test_stereo_int16_at_the_sample_rate(dataset):
    for track in tracks_of(dataset, "train") + tracks_of(dataset, "test"):
        for name in ("mixture", *STEMS):
            info = sf.info(track / f"{name}.wav")
            assert (info.channels, info.samplerate, info.subtype) == (2, SR, "PCM_16")
            assert info.frames == round(SECONDS * SR)


def test_mixture_is_the_exact_sum_of_the_stems(dataset):
    for track in tracks_of(dataset, "train") + tracks_of(dataset, "test"):
        total = sum(read(track, stem).astype(np.int32) for stem in STEMS)
        mixture = read(track, "mixture")
        np.testing.assert_array_equal(mixture, total)
        assert np.abs(mixture).max() > 16000  # scaled to use the range, yet never clipped


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def make(name: str, seed: int) -> dict[str, str]:
        root = tmp_path / name
        synthesize(root, tracks=1, seconds=1.5, seed=seed, sample_rate=SR, test_tracks=1)
        return digest(root)

    first, again, other = make("a", 7), make("b", 7), make("c", 8)
    assert first == again
    assert len(first) == 10
    assert not set(first.values()) & set(other.values())


def test_no_stem_is_silent_or_clipped(dataset):
    for track in tracks_of(dataset):
        for stem in STEMS:
            audio = read(track, stem).astype(float) / 32768
            assert np.sqrt(np.mean(audio**2)) > 0.01, (track.name, stem)
            assert np.abs(audio).max() < 0.99


def test_bass_is_low(dataset):
    freqs, power = spectrum(dataset, "bass")
    assert centroid(freqs, power) < 150
    assert band(freqs, power, 0, 250) > 0.9


def test_other_is_mid_range_and_above_the_bass(dataset):
    freqs, power = spectrum(dataset, "other")
    assert band(freqs, power, 150, 2000) > 0.8
    assert centroid(freqs, power) > centroid(*spectrum(dataset, "bass")) + 100


def test_drums_have_kick_and_hats(dataset):
    freqs, power = spectrum(dataset, "drums")
    assert band(freqs, power, 30, 150) > 0.2  # kick
    highs = {stem: band(*spectrum(dataset, stem), 5000, SR / 2) for stem in STEMS}
    assert max(highs, key=highs.get) == "drums" and highs["drums"] > 0.01  # hi-hats
    # hits: loud short frames and quiet ones, unlike a steady tone or noise
    mono = sum(read(t, "drums").astype(float).mean(axis=1) for t in tracks_of(dataset))
    frames = np.sqrt((mono[: len(mono) // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1))
    assert np.percentile(frames, 95) > 2.5 * np.percentile(frames, 25)


def test_vocals_sing_in_the_voice_band_with_rests(dataset):
    freqs, power = spectrum(dataset, "vocals")
    assert band(freqs, power, 150, 4000) > 0.9
    assert band(freqs, power, 0, 150) < 0.02
    for track in tracks_of(dataset):
        mono = read(track, "vocals").astype(float).mean(axis=1)
        frames = np.sqrt((mono[: len(mono) // 800 * 800].reshape(-1, 800) ** 2).mean(axis=1))
        silent = frames < 0.01 * frames.max()  # 50 ms frames
        assert 0.05 < silent.mean() < 0.8, track.name
        # harmonic, not noise: a few strong spectral peaks in voiced frames
        loud = np.argmax(frames)
        segment = mono[loud * 800 : loud * 800 + 800] * np.hanning(800)
        magnitude = np.abs(np.fft.rfft(segment))
        flatness = np.exp(np.mean(np.log(magnitude + 1e-9))) / np.mean(magnitude)
        assert flatness < 0.2
        peak = np.fft.rfftfreq(800, 1 / SR)[np.argmax(magnitude)]
        assert 150 < peak < 4000


@pytest.mark.slow
def test_musdb_reads_it(dataset):
    db = musdb.DB(root=str(dataset), is_wav=True, subsets="train")
    assert sorted(track.name for track in db) == [p.name for p in tracks_of(dataset)]
    track = db[0]
    assert track.rate == SR
    vocals = track.sources["vocals"].audio
    assert vocals.shape == (round(SECONDS * SR), 2)
    total = sum(track.sources[stem].audio for stem in STEMS)
    np.testing.assert_allclose(track.audio, total, atol=1e-6)


def test_existing_folder_is_refused_and_nothing_is_left(dataset):
    before = digest(dataset)
    with pytest.raises(UnmixlabError, match="not an empty folder") as error:
        synthesize(dataset, tracks=1, seconds=1.0, sample_rate=SR)
    assert error.value.path == dataset
    assert digest(dataset) == before
    assert [p.name for p in dataset.parent.iterdir()] == ["musdb"]


def test_empty_existing_folder_is_filled(tmp_path):
    (tmp_path / "out").mkdir()
    synthesize(tmp_path / "out", tracks=1, seconds=1.0, sample_rate=SR, test_tracks=1)
    assert len(list((tmp_path / "out").rglob("*.wav"))) == 10


def test_a_failure_leaves_no_half_written_folder(tmp_path, monkeypatch):
    def broken(rng, song):
        raise RuntimeError("boom")

    monkeypatch.setattr(unmixlab.synth, "_vocals", broken)
    with pytest.raises(RuntimeError, match="boom"):
        synthesize(tmp_path / "out", tracks=1, seconds=1.0, sample_rate=SR)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs", [{"tracks": 0}, {"seconds": 0.5}, {"test_tracks": 0}, {"sample_rate": 100}]
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(UnmixlabError):
        synthesize(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path):
    out = tmp_path / "synth"
    result = CliRunner().invoke(cli, ["data", "synth", str(out), "--tracks", "2", "--seconds", "2"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "2 train and 2 test" in result.output
    assert len(list(out.rglob("*.wav"))) == 20
    assert sf.info(next(out.rglob("vocals.wav"))).samplerate == 44100
