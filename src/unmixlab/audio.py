"""Audio files in and out (``soundfile``) and resampling (``torchaudio``).

Audio arrays are ``(nb_channels, nb_timesteps)`` float32 tensors unless said otherwise.
"""

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from unmixlab.errors import UnmixlabError
from unmixlab.files import atomic_path


def read_audio(path: Path, sample_rate: int | None = None) -> tuple[Tensor, int]:
    """Read a whole file as ``(nb_channels, nb_timesteps)``, resampled to ``sample_rate`` if given.

    Raises:
        UnmixlabError: the file is missing, unreadable or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise UnmixlabError("audio file not found", "Check the path.", path)
    check_not_truncated(path)
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise UnmixlabError(
            f"cannot read audio ({error})",
            "The file is unreadable or truncated; re-export or re-download it.",
            path,
        ) from error
    if data.shape[0] == 0:
        raise UnmixlabError(
            "audio file holds no samples", "Replace it with a non-empty file.", path
        )
    if data.shape[1] > 2:
        raise UnmixlabError(
            f"has {data.shape[1]} channels; Open-Unmix separates mono or stereo",
            "Downmix it first, e.g. ffmpeg -i IN -ac 2 OUT.wav",
            path,
        )
    check_samples(data, rate, path)
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    if sample_rate is not None and sample_rate != rate:
        audio, rate = resample(audio, rate, sample_rate), sample_rate
    return audio, rate


# the largest sample magnitude accepted as audio, after the format's conversion to float
# (integer PCM divided by its full scale): +24 dBFS leaves float files their headroom, while
# values beyond it (1e38 spikes, random bytes read as floats) are not audio
SAMPLE_LIMIT = 16.0


def absurd_samples(samples: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Where samples are not audio: NaN, infinite, or beyond +/-:data:`SAMPLE_LIMIT`.

    Args:
        samples: audio of any shape (numpy array or tensor).

    Returns:
        A boolean mask of the same shape and kind.
    """
    if isinstance(samples, Tensor):
        return ~(samples.abs() <= SAMPLE_LIMIT)  # NaN compares False
    return ~(np.abs(samples) <= SAMPLE_LIMIT)


def check_samples(
    samples: np.ndarray, rate: float, path: Path | None = None, start: int = 0
) -> None:
    """Refuse samples that are not audio (:func:`absurd_samples`), naming the first one's time.

    Args:
        samples: ``(nb_timesteps, nb_channels)`` audio (as ``soundfile`` reads it).
        rate: its sample rate in Hz.
        path: the file it came from (named in the error).
        start: index of the first row in the whole file.

    Raises:
        UnmixlabError: a sample is NaN, +/-Inf, or beyond +/-:data:`SAMPLE_LIMIT`.
    """
    bad = absurd_samples(samples)
    if not bad.any():
        return
    row = int(np.argmax(bad.any(axis=1)))
    value = samples[row][bad[row]][0]
    index = start + row
    where = f"{value:g} at sample {index}, {index / rate:.3f} s, and {int(bad.sum()) - 1} more"
    if np.isfinite(samples).all():
        raise UnmixlabError(
            f"audio holds samples beyond +/-{SAMPLE_LIMIT:g} (full scale is 1; {where})",
            "That is not audio but damage or a wrong format: fix the export, or lower its gain",
            path,
        )
    raise UnmixlabError(
        f"audio holds non-finite samples ({where})",
        "NaN and infinity are not audio: fix the export (or replace them with 0) and try again",
        path,
    )


def check_samples_file(path: Path, block: int = 2**18) -> None:
    """Refuse a float audio file holding samples that are not audio (integer files cannot).

    Raises:
        UnmixlabError: naming the file and the time of the first absurd sample.
    """
    info = sf.info(path)
    if info.subtype not in ("FLOAT", "DOUBLE"):
        return
    start = 0
    for samples in sf.blocks(path, blocksize=block, dtype="float32", always_2d=True):
        check_samples(samples, info.samplerate, path, start)
        start += len(samples)


def check_not_truncated(path: Path) -> None:
    """Refuse a RIFF WAV file whose data chunk claims more bytes than the file holds.

    libsndfile reads such a file up to where it was cut, without complaint. Other formats
    (and WAV headers with a placeholder size, as streaming writers leave) pass unchecked.

    Raises:
        UnmixlabError: the file is truncated.
    """
    with open(path, "rb") as stream:
        head = stream.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return
        file_size = os.fstat(stream.fileno()).st_size
        while len(chunk := stream.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                if size not in (0, 0xFFFFFFFF) and stream.tell() + size > file_size:
                    raise UnmixlabError(
                        f"is truncated: it holds {file_size - stream.tell()} of its "
                        f"{size} bytes of audio",
                        "Re-export or re-download it",
                        path,
                    )
                return
            stream.seek(size + size % 2, os.SEEK_CUR)  # chunks are padded to even sizes


def resample(audio: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc)."""
    if orig_rate == new_rate:
        return audio
    return AF.resample(audio, orig_rate, new_rate)


def match_channels(audio: Tensor, nb_channels: int, path: Path | None = None) -> Tensor:
    """Make ``(nb_channels, nb_timesteps)``: mono is duplicated, stereo is averaged for mono."""
    if audio.shape[0] == nb_channels:
        return audio
    if audio.shape[0] == 1:
        return audio.expand(nb_channels, -1).contiguous()
    if nb_channels == 1:
        return audio.mean(0, keepdim=True)
    raise UnmixlabError(
        f"has {audio.shape[0]} channels, expected {nb_channels}",
        "Convert it to mono or stereo first.",
        path,
    )


# a fixed-point file with more of its samples beyond full scale than this is not written:
# a clip that loud is garbage, whatever status a command would give it
CLIPPED_FRACTION_LIMIT = 0.1


def write_audio(
    path: Path,
    audio: Tensor,
    sample_rate: int,
    subtype: str = "PCM_16",
    max_clipped: float | None = CLIPPED_FRACTION_LIMIT,
) -> Path:
    """Write ``(nb_channels, nb_timesteps)`` atomically (temporary name, then rename).

    The format follows the suffix (``.wav``, ``.mp3``, ``.flac``...); ``subtype`` is
    soundfile's (``PCM_16``, ``FLOAT``, ``MPEG_LAYER_III``...). Fixed-point and lossy
    subtypes are clipped to [-1, 1]; more than ``max_clipped`` of the samples clipped is
    refused (None: clip whatever it takes, e.g. for an excerpt that shows a bad model).

    Raises:
        UnmixlabError: the audio holds NaN or infinite samples, or more than ``max_clipped``
            of it would be clipped; nothing is written.
    """
    path = Path(path)
    data = audio.detach().cpu().numpy().T
    if not np.isfinite(data).all():
        raise UnmixlabError(
            "not written: the audio holds NaN or infinite samples",
            "Check the model and its input",
            path,
        )
    if subtype not in ("FLOAT", "DOUBLE"):
        clipped = float((np.abs(data) > 1.0).mean()) if data.size else 0.0  # NaN-free here
        if max_clipped is not None and clipped > max_clipped:
            raise UnmixlabError(
                f"not written: {clipped:.0%} of its samples are beyond full scale and would be "
                "clipped",
                "The input is far too loud: lower its gain (or check the model) and try again",
                path,
            )
        data = np.clip(data, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, data, sample_rate, subtype=subtype, format=path.suffix[1:].upper())
    return path
