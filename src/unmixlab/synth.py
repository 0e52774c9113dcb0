"""Synthetic MUSDB18-HQ-format data set: drums, bass, other and vocals from a seed.

Each track is a short song: a tempo, a key and a four-chord progression drive a drum
groove (kick, snare, hi-hats), a plucked bass on the chord roots, chords (pad, arpeggio,
stabs) and a formant-synthesised singing voice whose melody follows the chords, with
vibrato, changing vowels and rests between phrases. Every stem is quantised to int16
before the mixture is summed, so ``mixture == drums + bass + other + vocals`` exactly.

Mono signals are ``(nb_timesteps,)`` arrays, stereo stems ``(nb_timesteps, nb_channels)``
with ``nb_channels == 2``. All randomness comes from ``numpy.random.default_rng(seed)``:
the same arguments give the same bytes.
"""

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unmixlab.config import TARGETS
from unmixlab.errors import UnmixlabError
from unmixlab.progress import tqdm

_KEYS = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 2, 3, 4))
_TITLES = (
    "Groove", "Lullaby", "Echoes", "Drift", "Signals", "Daybreak", "Undertow", "Paper Moon",
    "Static", "Harbour Lights", "Slow Burn", "Northern Line", "Glass House", "Afterglow",
)  # fmt: skip
# 16th-note steps within a bar (16 steps)
_KICKS = ((0, 8), (0, 8, 10), (0, 6, 8), (0, 3, 8, 11), (0, 7, 10))
# (start step, length in steps) within a bar
_BASS_LINES = (
    ((0, 4), (4, 4), (8, 4), (12, 4)),
    ((0, 6), (6, 2), (8, 6), (14, 2)),
    ((0, 3), (3, 3), (6, 2), (8, 3), (11, 3), (14, 2)),
    ((0, 8), (8, 4), (12, 4)),
)
# formant frequencies (Hz) of the vowels a, e, i, o, u, and the shared bandwidths
_VOWELS = np.array(
    [
        [800, 1200, 2500, 3300, 4200],
        [450, 1900, 2550, 3300, 4200],
        [300, 2300, 3000, 3500, 4300],
        [450, 800, 2800, 3300, 4200],
        [325, 700, 2500, 3300, 4200],
    ],
    dtype=float,
)
_BANDWIDTHS = np.array([80.0, 90.0, 120.0, 200.0, 250.0])


@dataclass(frozen=True)
class _Song:
    """The shared plan of one track: timing, key and one chord (MIDI triad) per bar."""

    sample_rate: int
    nb_timesteps: int
    step: float  # samples per 16th note
    chords: np.ndarray  # (nb_bars, 3) MIDI notes of each bar's triad
    scale: np.ndarray  # (77,) MIDI notes of the key, from its tonic in octave -1 up

    def at(self, step: float) -> int:
        """Sample index of a (fractional) 16th-note step from the start."""
        return int(round(step * self.step))

    @property
    def nb_bars(self) -> int:
        """Number of bars."""
        return len(self.chords)


class SynthSettings(BaseModel):
    """A synthetic data set; its defaults, defined once (``unmixlab data synth``, presets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracks: int = Field(8, ge=1, description="number of train tracks")
    seconds: float = Field(12.0, ge=1.0, description="duration of each track in seconds")
    seed: int = Field(0, description="seed of every random choice (same settings, same bytes)")
    sample_rate: int = Field(44100, ge=8000, description="sample rate of the wav files in Hz")
    test_tracks: int | None = Field(
        None, ge=1, description="number of test tracks (default: tracks // 4, at least 2)"
    )

    def test_count(self) -> int:
        """The test tracks to write."""
        return max(2, self.tracks // 4) if self.test_tracks is None else self.test_tracks


def synthesize(root: Path, settings: SynthSettings | None = None, **fields: object) -> Path:
    """Write a MUSDB18-HQ-format folder of synthetic songs and return ``root``.

    Args:
        root: folder to create; must not exist or be empty.
        settings: what to write (default: ``SynthSettings(**fields)``).
        **fields: :class:`SynthSettings` fields, when ``settings`` is not given.

    Returns:
        ``root``, holding ``{train,test}/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav``.

    Raises:
        UnmixlabError: bad settings (naming the flag), or ``root`` exists and is not empty.
    """
    if settings is None:
        try:
            settings = SynthSettings(**fields)
        except ValidationError as error:
            first = error.errors()[0]
            flag = "--" + "-".join(str(p) for p in first["loc"]).replace("_", "-")
            raise UnmixlabError(
                f"invalid {flag}: {first['msg']}", f"Fix {flag} (see unmixlab data synth --help)"
            ) from error
    tracks, seconds, seed = settings.tracks, settings.seconds, settings.seed
    sample_rate, test_tracks = settings.sample_rate, settings.test_count()
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UnmixlabError(
            "the output folder already exists and is not an empty folder",
            "Choose another folder, or delete this one first.",
            root,
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        subsets = ["train"] * tracks + ["test"] * test_tracks
        rngs = np.random.default_rng(seed).spawn(len(subsets))
        for index, (subset, rng) in enumerate(
            tqdm(list(zip(subsets, rngs, strict=True)), desc="synth", unit="track")
        ):
            _write_track(tmp / subset, index, rng, round(seconds * sample_rate), sample_rate)
        try:
            os.replace(tmp, root)
        except OSError as error:
            raise UnmixlabError(
                f"could not move the finished data set into place ({error.strerror})",
                "Choose another folder, or delete this one first.",
                root,
            ) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _write_track(folder: Path, index: int, rng: np.random.Generator, n: int, sr: int) -> None:
    """Synthesise one song and write its mixture and four stems as int16 wav files."""
    song, title = _plan(rng, n, sr)
    stems = {
        "drums": _drums(rng, song),
        "bass": _bass(rng, song),
        "other": _other(rng, song),
        "vocals": _vocals(rng, song),
    }
    levels = {"drums": 1.0, "bass": rng.uniform(0.7, 1.0), "other": rng.uniform(0.5, 0.8)}
    levels["vocals"] = rng.uniform(0.9, 1.3)
    for name, audio in stems.items():
        audio *= levels[name] / (np.sqrt(np.mean(audio**2)) + 1e-9)
    peak = max(np.abs(sum(stems.values())).max(), *(np.abs(a).max() for a in stems.values()))
    ints = {k: np.round(a * (0.89 * 32767 / peak)).astype(np.int16) for k, a in stems.items()}
    mixture = sum(a.astype(np.int32) for a in ints.values())
    assert np.abs(mixture).max() <= 32767, "headroom 0.89 leaves room for rounding"
    track = folder / f"Synth {index:03d} - {title}"
    track.mkdir(parents=True)
    sf.write(track / "mixture.wav", mixture.astype(np.int16), sr, subtype="PCM_16")
    for name in TARGETS:
        sf.write(track / f"{name}.wav", ints[name], sr, subtype="PCM_16")


def _plan(rng: np.random.Generator, n: int, sr: int) -> tuple[_Song, str]:
    """Pick tempo, key and chord progression; return the song plan and its title."""
    bpm = rng.uniform(85.0, 135.0)
    tonic = int(rng.integers(12))
    mode = str(rng.choice(list(_SCALES)))
    step = sr * 60.0 / bpm / 4
    nb_bars = int(np.ceil(n / (16 * step)))
    scale = np.array([12 * o + i + tonic for o in range(11) for i in _SCALES[mode]])
    degrees = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    chords = np.array([[scale[35 + d + 2 * j] for j in range(3)] for d in degrees])
    chords = chords[np.arange(nb_bars) % len(degrees)]  # (nb_bars, 3), around C4
    title = f"{_TITLES[rng.integers(len(_TITLES))]} in {_KEYS[tonic]} {mode}"
    return _Song(sr, n, step, chords, scale), title


def _hz(midi: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz of MIDI note numbers (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def _in_range(pitch_class: int, low: int) -> int:
    """MIDI note of ``pitch_class`` in the octave ``[low, low + 12)``."""
    return low + (pitch_class - low) % 12


def _place(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    """Add ``sound`` into ``out`` from sample ``start``, cut at the end of ``out``."""
    stop = min(len(out), start + len(sound))
    if start < stop:
        out[start:stop] += sound[: stop - start]


def _pan(mono: np.ndarray, pan: float, delay: int = 0) -> np.ndarray:
    """Place ``(nb_timesteps,)`` in stereo, ``(nb_timesteps, 2)``.

    Constant-power pan (``pan`` in [-1, 1], left to right); the far channel also lags by
    ``delay`` samples, which widens the image.
    """
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4
    stereo = mono[:, None] * np.array([np.cos(angle), np.sin(angle)])
    far = 0 if pan >= 0 else 1
    if delay > 0:
        stereo[delay:, far] = stereo[:-delay, far].copy()
        stereo[:delay, far] = 0.0
    return stereo


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``(nb_timesteps,)`` over ``width`` samples."""
    width = max(1, width)
    padded = np.concatenate([np.full(width // 2, x[0]), x, np.full(width - width // 2, x[-1])])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    return (sums[width:] - sums[:-width])[: len(x)] / width


def _fade(length: int, attack: int, release: int) -> np.ndarray:
    """Linear attack and release envelope of ``(length,)``."""
    t = np.arange(length)
    return np.minimum(1.0, np.minimum((t + 1) / max(attack, 1), (length - t) / max(release, 1)))


def _partials(
    f0: float, length: int, sr: int, amps: np.ndarray, decays: np.ndarray, detune: float = 0.0
) -> np.ndarray:
    """Harmonics of ``f0`` with amplitudes ``amps`` and decay rates ``decays`` (1/s).

    Each harmonic is ``Im exp((-decay + 2j pi k f0) t)``; writing ``t`` as block start plus
    offset turns the sum over harmonics into one small matrix product ``(nb_blocks, block)``.

    Returns:
        ``(length,)`` tone; harmonics above 0.45 ``sr`` are left out.
    """
    f0 = f0 * (1.0 + detune)
    k = np.arange(1, len(amps) + 1)
    keep = k * f0 < 0.45 * sr
    rate = -decays[keep] + 2j * np.pi * f0 * k[keep]  # (nb_harmonics,) per second
    block = 256
    starts = np.arange(0, length, block)[:, None] / sr  # (nb_blocks, 1)
    offsets = np.arange(block)[:, None] / sr  # (block, 1)
    # einsum, not @: BLAS threads would spin on these small products
    tone = np.einsum("bk,tk->bt", amps[keep] * np.exp(starts * rate), np.exp(offsets * rate))
    return tone.imag.reshape(-1)[:length]


def _filtered_noise(
    rng: np.random.Generator, length: int, sr: int, low: float, high: float
) -> np.ndarray:
    """White noise band-limited to ``[low, high]`` Hz by zeroing FFT bins, ``(length,)``."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, 1 / sr)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n=length)
    return noise / (np.abs(noise).max() + 1e-9)


def _drum_hits(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    """One-shot kick, snare, closed and open hi-hat samples, each ``(length,)``."""
    t = np.arange(int(0.45 * sr)) / sr
    sweep = rng.uniform(45, 58) + rng.uniform(90, 150) * np.exp(-t / rng.uniform(0.02, 0.05))
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / rng.uniform(0.15, 0.3))
    kick[: int(0.004 * sr)] += 0.4 * _filtered_noise(rng, int(0.004 * sr), sr, 1000, 8000)
    ts = t[: int(0.3 * sr)]
    tone = np.sin(2 * np.pi * rng.uniform(170, 230) * ts) * np.exp(-ts / 0.06)
    rattle = _filtered_noise(rng, len(ts), sr, 800, 0.45 * sr) * np.exp(-ts / 0.09)
    snare = 0.5 * tone + rattle
    cutoff = min(7000.0, 0.3 * sr)
    hats = {}
    for name, seconds, decay in (("hat", 0.08, 0.02), ("open_hat", 0.35, 0.12)):
        th = t[: int(seconds * sr)]
        hats[name] = _filtered_noise(rng, len(th), sr, cutoff, 0.48 * sr) * np.exp(-th / decay)
    return {"kick": kick * _fade(len(t), 1, 200), "snare": snare * _fade(len(ts), 1, 200), **hats}


def _drums(rng: np.random.Generator, song: _Song) -> np.ndarray:
    """Kick, snare and hi-hats on a 16th-note groove with swing; ``(nb_timesteps, 2)``."""
    hits = _drum_hits(rng, song.sample_rate)
    parts = {name: np.zeros(song.nb_timesteps) for name in ("kick", "snare", "hat")}
    kicks = _KICKS[rng.integers(len(_KICKS))]
    hat_every = int(rng.choice([1, 2]))
    open_hat = rng.random() < 0.5
    swing = rng.uniform(0.0, 0.25)
    for bar in range(song.nb_bars):
        events = [("kick", s, 1.0) for s in kicks] + [("snare", s, 1.0) for s in (4, 12)]
        if rng.random() < 0.4:
            events.append(("snare", int(rng.choice([7, 10, 14, 15])), 0.35))
        for s in range(0, 16, hat_every):
            sample = "open_hat" if open_hat and s == 14 else "hat"
            events.append((sample, s, 0.9 if s % 4 == 0 else 0.6))
        for sample, s, velocity in events:
            start = song.at(16 * bar + s + swing * (s % 2))
            gain = velocity * rng.uniform(0.85, 1.0)
            _place(parts[sample.replace("open_", "")], start, gain * hits[sample])
    center, width = rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.6)
    pans = {"kick": center, "snare": center + 0.3 * width, "hat": center - width}
    delays = {"kick": 0, "snare": 0, "hat": int(width * 0.001 * song.sample_rate)}
    parts["hat"] *= 0.8
    return sum(_pan(parts[k], pans[k], delays[k]) for k in parts)


def _bass(rng: np.random.Generator, song: _Song) -> np.ndarray:
    """Plucked bass (41-110 Hz fundamentals) following the chord roots; ``(nb_timesteps, 2)``."""
    sr, out = song.sample_rate, np.zeros(song.nb_timesteps)
    line = _BASS_LINES[rng.integers(len(_BASS_LINES))]
    nb_harmonics = int(rng.integers(3, 7))
    k = np.arange(1, nb_harmonics + 1)
    amps = rng.uniform(0.5, 1.0, nb_harmonics) / k**1.3
    decays = rng.uniform(2.0, 6.0) * np.sqrt(k)
    for bar, chord in enumerate(song.chords):
        root = _in_range(chord[0] % 12, 28)  # 41-78 Hz
        for i, (start, length) in enumerate(line):
            note = root
            if i == len(line) - 1 and rng.random() < 0.5:
                note = root + 7 if root + 12 > 45 else root + int(rng.choice([7, 12]))
            n = song.at(length) - int(0.01 * sr)
            tone = _partials(_hz(note), n, sr, amps, decays) * _fade(n, int(0.004 * sr), 300)
            _place(out, song.at(16 * bar + start), rng.uniform(0.8, 1.0) * tone)
    return _pan(out, rng.uniform(-0.1, 0.1))


def _other(rng: np.random.Generator, song: _Song) -> np.ndarray:
    """Chords in the 150-1500 Hz range: a mix of pad, arpeggio and stabs; ``(nb_timesteps, 2)``."""
    sr = song.sample_rate
    layers = [("pad", "arp"), ("pad", "stabs"), ("arp", "stabs"), ("pad", "arp", "stabs")]
    layers = layers[rng.integers(len(layers))]
    center, width = rng.uniform(-0.3, 0.3), rng.uniform(0.2, 0.8)
    out = np.zeros((song.nb_timesteps, 2))
    k = np.arange(1, 9)
    for layer in layers:
        mono = np.zeros(song.nb_timesteps)
        if layer == "pad":  # detuned saw-like voices, slow attack, whole bars
            amps, decays = np.exp(-k / rng.uniform(1.5, 3.0)) / k, np.full(8, 0.3)
            n = song.at(16)
            env = _fade(n, int(rng.uniform(0.1, 0.3) * sr), int(0.15 * sr))
            for bar, chord in enumerate(song.chords):
                for note in (_in_range(c % 12, 53) for c in chord):
                    for detune in (-0.003, 0.003):
                        tone = _partials(_hz(note), n, sr, amps, decays, detune)
                        _place(mono, song.at(16 * bar), 0.3 * env * tone)
        elif layer == "arp":  # plucked triangle-like notes cycling up the chord
            amps = np.where(k % 2 == 1, 1.0 / k**2, 0.0)
            decays = rng.uniform(5.0, 12.0) * k
            every = int(rng.choice([2, 4]))
            for bar, chord in enumerate(song.chords):
                notes = [_in_range(c % 12, 67) for c in chord]
                for i, s in enumerate(range(0, 16, every)):
                    n = song.at(every * 2)
                    tone = _partials(_hz(notes[i % 3]), n, sr, amps, decays)
                    tone *= _fade(n, int(0.003 * sr), 200)
                    _place(mono, song.at(16 * bar + s), rng.uniform(0.6, 0.9) * tone)
        else:  # short organ-like chord stabs on the off-beats
            amps, decays = 1.0 / k**1.5, np.full(8, 4.0)
            n = song.at(rng.uniform(1.0, 1.8))
            for bar, chord in enumerate(song.chords):
                for s in (2, 6, 10, 14):
                    for note in (_in_range(c % 12, 60) for c in chord):
                        tone = _partials(_hz(note), n, sr, amps, decays)
                        tone *= _fade(n, int(0.005 * sr), int(0.02 * sr))
                        _place(mono, song.at(16 * bar + s), 0.3 * tone)
        delay = int(rng.uniform(0.0, 0.0004) * sr)
        out += _pan(mono, center + width * rng.uniform(-1, 1), delay)
    return out


def _melody(rng: np.random.Generator, song: _Song) -> list[tuple[int, int, int, int]]:
    """Sung notes as ``(start step, stop step, MIDI note, vowel)``, in phrases with rests."""
    low = int(rng.integers(54, 61))  # 185-277 Hz; the melody spans 13 semitones above
    scale = song.scale[(song.scale >= low) & (song.scale <= low + 13)]
    notes, step, last = [], int(rng.integers(3, 9)), int(rng.choice(scale))
    total = 16 * song.nb_bars
    while step < total:
        phrase_end = min(total, step + int(rng.choice([8, 12, 16, 24])))
        while step < phrase_end:
            length = min(int(rng.choice([2, 2, 4, 4, 6, 8])), phrase_end - step)
            chord = song.chords[step // 16]
            near = scale[np.abs(scale - last) <= 4]
            weights = np.where(np.isin(near % 12, chord % 12), 3.0, 1.0)
            last = int(rng.choice(near, p=weights / weights.sum()))
            notes.append((step, step + length, last, int(rng.integers(len(_VOWELS)))))
            step += length
        step += int(rng.choice([4, 6, 8]))  # rest between phrases
    return notes


def _vocals(rng: np.random.Generator, song: _Song) -> np.ndarray:
    """Formant-synthesised singing voice with vibrato, vowels and rests; ``(nb_timesteps, 2)``.

    A band-limited sawtooth (the glottal source) follows the melody's pitch contour; it
    and a little breath noise pass through five vowel formants in the STFT domain, and
    some unfiltered breath adds air at 3-10 kHz.
    """
    sr, n = song.sample_rate, song.nb_timesteps
    notes = np.array(_melody(rng, song))  # (nb_notes, 4): start, stop, MIDI note, vowel
    starts = np.array([song.at(s) for s in notes[:, 0]])
    stops = np.array([song.at(s) for s in notes[:, 1]])
    sung = np.zeros(n)
    for start, stop in zip(starts, stops, strict=True):
        sung[start:stop] = 1.0
    t = np.arange(n) / sr
    current = np.clip(np.searchsorted(starts, np.arange(n), side="right") - 1, 0, None)
    since_onset = np.maximum(t - starts[current] / sr, 0.0)  # seconds into the current note
    # pitch: glides between notes, vibrato fading in after each onset, a slow drift
    pitch = _smooth(notes[current, 2].astype(float), int(0.04 * sr))
    rate, depth = rng.uniform(5.0, 6.0), rng.uniform(0.25, 0.5)
    pitch += depth * np.minimum(since_onset / 0.25, 1.0) * np.sin(2 * np.pi * rate * t)
    drift = _smooth(rng.standard_normal(n // 2048 + 2), 4)
    pitch += 0.08 * np.interp(t, np.arange(len(drift)) * 2048 / sr, drift)
    dt = _hz(pitch) / sr  # cycles per sample
    phase = np.cumsum(dt) % 1.0
    glottal = 2 * phase - 1 - _polyblep(phase, dt)
    gate = _smooth(sung, int(0.05 * sr)) * (0.8 + 0.2 * np.exp(-since_onset / 0.1))
    breath = _filtered_noise(rng, n, sr, 500, 0.45 * sr) * gate
    air = _filtered_noise(rng, n, sr, 3000, min(10000, 0.45 * sr)) * gate
    vowels = _VOWELS[notes[current, 3]]  # (nb_timesteps, 5)
    formants = np.stack([_smooth(f, int(0.06 * sr)) for f in vowels.T], axis=1)
    voice = _formant_filter(glottal * gate + 0.08 * breath, formants, sr)
    voice += 0.3 * np.sqrt(np.mean(voice**2)) * air
    voice *= 1.0 - np.exp(-gate / 0.05)  # keep the rests silent
    delay = int(rng.uniform(0.01, 0.025) * sr)
    echo = np.concatenate([np.zeros(delay), voice[:-delay]])
    center, width = rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.4)
    return _pan(voice, center) + _pan(0.5 * width * echo, center - np.sign(center + 1e-3) * 0.6)


def _polyblep(phase: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Band-limiting correction of a sawtooth at its jumps (``phase`` in [0, 1), step ``dt``)."""
    correction = np.zeros_like(phase)
    rise = phase < dt
    x = phase[rise] / dt[rise]
    correction[rise] = 2 * x - x * x - 1
    fall = phase > 1 - dt
    x = (phase[fall] - 1) / dt[fall]
    correction[fall] = x * x + 2 * x + 1
    return correction


def _formant_filter(x: np.ndarray, formants: np.ndarray, sr: int) -> np.ndarray:
    """Filter ``(nb_timesteps,)`` through time-varying formants ``(nb_timesteps, 5)`` in Hz.

    Each STFT frame is multiplied by a cascade of second-order resonances (unit gain at
    0 Hz) at that frame's formants, then overlap-added.
    """
    win = 1024 if sr > 24000 else 512
    hop, window = win // 4, np.hanning(win + 1)[:-1]
    padded = np.concatenate([np.zeros(win), x, np.zeros(2 * win)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop]  # (nb_frames, win)
    centers = np.clip(np.arange(len(frames)) * hop + win // 2 - win, 0, len(x) - 1)
    freqs = np.fft.rfftfreq(win, 1 / sr)  # (nb_bins,)
    power = np.ones((len(frames), len(freqs)))  # (nb_frames, nb_bins)
    for formant, bandwidth in zip(formants[centers].T, _BANDWIDTHS, strict=True):
        f2 = formant[:, None] ** 2  # (nb_frames, 1)
        power *= f2**2 / ((f2 - freqs**2) ** 2 + (bandwidth * freqs) ** 2)
    gains = np.sqrt(power) / (1.0 + freqs / 1500.0)  # with the glottal spectral tilt
    frames = np.fft.irfft(np.fft.rfft(frames * window) * gains, n=win) * window
    blocks = frames.reshape(len(frames), win // hop, hop)  # (nb_frames, 4, hop)
    out = np.zeros((len(frames) + win // hop - 1, hop))
    for r in range(win // hop):
        out[r : r + len(frames)] += blocks[:, r]
    out /= (window**2).reshape(win // hop, hop).sum(axis=0)
    return out.reshape(-1)[win : win + len(x)]
