"""Find, check and decode the tracks of a MUSDB18 folder (stems ``.mp4`` or HQ wav).

HQ wav folders are read with ``soundfile`` alone, so they need neither ``musdb`` nor ffmpeg
(GPU nodes often lack it); ``.stem.mp4`` files go through ``musdb``/``stempeg``/ffmpeg.
Every problem a user can fix (wrong root, missing stem, mismatched lengths or sample rates,
unreadable audio, NaN or infinite samples, wrong ``--is-wav``) raises one
:class:`UnmixlabError` naming the file.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from unmixlab.audio import check_not_truncated, check_samples_file, match_channels, resample
from unmixlab.config import STEMS
from unmixlab.errors import UnmixlabError

SUBSETS = ("train", "test")


@dataclass(frozen=True)
class Track:
    """One MUSDB track: its name, subset, files and native format."""

    name: str
    subset: str
    path: Path  # the track folder (HQ wav) or its .stem.mp4 file
    is_wav: bool
    rate: int
    nb_timesteps: int  # at the native rate
    nb_channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.nb_timesteps / self.rate

    def files(self) -> list[Path]:
        """The files holding this track's audio."""
        if self.is_wav:
            return [self.path / f"{stem}.wav" for stem in STEMS]
        return [self.path]


def discover(root: Path | None, is_wav: bool, subset: str = "train") -> list[Track]:
    """List and check the tracks of ``root/subset``, sorted by name.

    Raises:
        UnmixlabError: the root is missing or empty, the format flag is wrong, a stem is
            missing, unreadable or inconsistent with the others.
    """
    if root is None:
        raise UnmixlabError(
            "no data root given",
            "Pass --root DIR (a MUSDB18 folder), or make one with `unmixlab data synth DIR`",
        )
    root = Path(root)
    folder = root / subset
    if not root.is_dir():
        raise UnmixlabError(
            "data root does not exist",
            "Pass the MUSDB18 folder holding train/ and test/, or run `unmixlab data synth DIR`",
            root,
        )
    if not folder.is_dir():
        raise UnmixlabError(
            f"no '{subset}' folder in the data root",
            "A MUSDB18 root holds train/ and test/ folders; check --root",
            root,
        )
    wav_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    stem_files = sorted(folder.glob("*.stem.mp4"))
    if is_wav and not wav_dirs and stem_files:
        raise UnmixlabError("holds .stem.mp4 files, not wav folders", "Drop --is-wav", folder)
    if not is_wav and not stem_files and wav_dirs:
        raise UnmixlabError("holds wav folders, not .stem.mp4 files", "Add --is-wav", folder)
    if not (wav_dirs if is_wav else stem_files):
        raise UnmixlabError(
            "no tracks found",
            "Point --root at a MUSDB18 folder, or create one with `unmixlab data synth DIR`",
            folder,
        )
    tracks = [_wav_track(d, subset) for d in wav_dirs] if is_wav else _stem_tracks(root, subset)
    return sorted(tracks, key=lambda track: track.name)


def _wav_track(folder: Path, subset: str) -> Track:
    """Check one HQ track folder: every stem present, readable, same rate, length, channels."""
    infos = {}
    for stem in STEMS:
        path = folder / f"{stem}.wav"
        if not path.is_file():
            raise UnmixlabError(
                f"missing stem '{stem}.wav'",
                f"Every track folder needs {', '.join(s + '.wav' for s in STEMS)}",
                path,
            )
        check_not_truncated(path)
        try:
            infos[stem] = sf.info(path)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise UnmixlabError(
                f"cannot read audio ({error})", "Re-export or re-download this file", path
            ) from error
    # compare each stem with the value most stems share, so the odd file out is named
    # (a truncated mixture.wav is reported as itself, not as every other stem)
    rate, frames, channels = (
        Counter(getattr(info, key) for info in infos.values()).most_common(1)[0][0]
        for key in ("samplerate", "frames", "channels")
    )
    for stem, info in infos.items():
        path = folder / f"{stem}.wav"
        if info.frames == 0:
            raise UnmixlabError("holds no samples", "Replace it with the full stem", path)
        check_samples_file(path)
        if info.samplerate != rate:
            raise UnmixlabError(
                f"sample rate {info.samplerate} Hz differs from the other stems' {rate} Hz",
                "Resample all stems of a track to one rate",
                path,
            )
        if info.frames != frames:
            raise UnmixlabError(
                f"has {info.frames} samples, the other stems have {frames}",
                "All stems of a track must have the same length; re-export a truncated or cut file",
                path,
            )
        if info.channels != channels:
            raise UnmixlabError(
                f"has {info.channels} channels, the other stems have {channels}",
                "All stems of a track must have the same channel count",
                path,
            )
    return Track(folder.name, subset, folder, True, rate, frames, channels)


def _stem_tracks(root: Path, subset: str) -> list[Track]:
    """Tracks of a MUSDB18 stems folder, read through ``musdb``/``stempeg`` (needs ffprobe)."""
    musdb = import_musdb(root / subset)
    tracks = []
    for mtrack in musdb.DB(root=str(root), subsets=subset, is_wav=False):
        path = Path(mtrack.path)
        try:
            info = mtrack.stems  # decodes: finds truncated or broken files
        except Exception as error:  # noqa: BLE001 - ffmpeg reports through many types
            raise UnmixlabError(
                f"cannot decode stems ({error})", "Re-download this track", path
            ) from error
        if info.shape[0] != len(STEMS):
            raise UnmixlabError(
                f"has {info.shape[0]} streams, expected {len(STEMS)}",
                "A MUSDB18 .stem.mp4 holds mixture, drums, bass, other, vocals",
                path,
            )
        tracks.append(
            Track(mtrack.name, subset, path, False, int(mtrack.rate), info.shape[1], info.shape[2])
        )
    return tracks


def split_train_valid(
    tracks: list[Track], valid_names: tuple[str, ...] = (), valid_count: int = 1
) -> tuple[list[Track], list[Track]]:
    """Split training tracks into (train, valid).

    The validation tracks are the given names; else musdb's official list where those
    tracks exist; else the last ``valid_count`` tracks by name. Never empty.
    """
    names = {track.name for track in tracks}
    if valid_names:
        unknown = sorted(set(valid_names) - names)
        if unknown:
            raise UnmixlabError(
                f"validation tracks not in the training set: {', '.join(unknown)}",
                "Fix --valid-tracks to name tracks of ROOT/train",
            )
        chosen = set(valid_names)
    else:
        chosen = names & set(official_validation_tracks())
        if not chosen:
            chosen = {track.name for track in tracks[-valid_count:]}
    train = [track for track in tracks if track.name not in chosen]
    valid = [track for track in tracks if track.name in chosen]
    if not train:
        raise UnmixlabError(
            f"all {len(tracks)} training tracks are used for validation",
            "Add tracks or lower --valid-count",
        )
    return train, valid


def official_validation_tracks() -> list[str]:
    """Musdb's built-in validation split of the MUSDB18 training set (empty without musdb).

    Read from musdb's package data without importing it (its import needs ffmpeg).
    """
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("musdb")
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(next(iter(spec.submodule_search_locations))) / "configs" / "mus.yaml"
    return list(yaml.safe_load(path.read_text())["validation_tracks"])


def import_musdb(where: Path | None = None) -> ModuleType:
    """``import musdb``, or one clear error when ffmpeg/ffprobe (which it needs) are missing.

    Raises:
        UnmixlabError: ``musdb`` cannot be imported (no ffmpeg or ffprobe on PATH).
    """
    try:
        import musdb
    except (RuntimeError, ImportError) as error:
        raise UnmixlabError(
            f"reading MUSDB18 .stem.mp4 files needs ffmpeg and ffprobe on PATH ({error})",
            "Install ffmpeg (e.g. apt-get install ffmpeg), or use MUSDB18-HQ wav folders with "
            "--is-wav, which need no ffmpeg",
            where,
        ) from error
    return musdb


def check_channels(track: Track, nb_channels: int) -> None:
    """Refuse mono audio for a stereo model (stereo for a mono model is averaged).

    Raises:
        UnmixlabError: ``track`` is mono and ``nb_channels`` is 2.
    """
    if track.nb_channels == 1 and nb_channels == 2:
        raise UnmixlabError(
            "is mono, but the model expects stereo",
            "Train with --nb-channels 1, or convert the data set to stereo",
            track.path,
        )


def decode_wav(
    track: Track,
    stem: str,
    sample_rate: int,
    nb_channels: int,
    start: float = 0.0,
    duration: float | None = None,
) -> Tensor:
    """One stem of an HQ wav track, read by ``soundfile`` (no ffmpeg), as ``(nb_channels, n)``.

    ``start`` and ``duration`` are in seconds of the track; the result is float32 at
    ``sample_rate``.
    """
    check_channels(track, nb_channels)
    path = track.path / f"{stem}.wav"
    first = int(round(start * track.rate))
    frames = -1 if duration is None else int(round(duration * track.rate))
    try:
        data, _ = sf.read(path, start=first, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise UnmixlabError(
            f"cannot read audio ({error})", "The file is truncated or broken; replace it", path
        ) from error
    audio = torch.from_numpy(np.ascontiguousarray(data.T))  # (nb_channels, nb_timesteps)
    return match_channels(resample(audio, track.rate, sample_rate), nb_channels, path)


class MusdbDecoder:
    """Decodes stems through ``musdb`` (ffmpeg), the way the reference data set does.

    HQ wav tracks are read by :func:`decode_wav` instead: no ``musdb``, no ffmpeg.
    """

    def __init__(self, tracks: list[Track]):
        self._mtracks = {}
        stems = {(t.path.parent.parent, t.subset) for t in tracks if not t.is_wav}
        musdb = import_musdb() if stems else None
        for root, subset in stems:
            for mtrack in musdb.DB(root=str(root), subsets=subset, is_wav=False):
                self._mtracks[(subset, mtrack.name)] = mtrack

    def decode(
        self,
        track: Track,
        stem: str,
        sample_rate: int,
        nb_channels: int,
        start: float = 0.0,
        duration: float | None = None,
    ) -> Tensor:
        """One stem as ``(nb_channels, nb_timesteps)`` float32 at ``sample_rate``.

        ``start`` and ``duration`` are in seconds of the track.
        """
        if track.is_wav:
            return decode_wav(track, stem, sample_rate, nb_channels, start, duration)
        check_channels(track, nb_channels)
        mtrack = self._mtracks[(track.subset, track.name)]
        mtrack.chunk_start, mtrack.chunk_duration = start, duration
        try:
            data = mtrack.audio if stem == "mixture" else mtrack.sources[stem].audio
        except Exception as error:  # noqa: BLE001 - ffmpeg fails through many types
            raise UnmixlabError(
                f"cannot decode '{stem}' ({error})",
                "The file is truncated or broken; replace it",
                track.path,
            ) from error
        data = data.reshape(len(data), -1)  # musdb gives mono as (nb_timesteps,)
        audio = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))
        return match_channels(resample(audio, track.rate, sample_rate), nb_channels, track.path)
