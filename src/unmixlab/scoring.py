"""Scoring one MUSDB track: museval's BSS Eval or unmixlab's (:mod:`unmixlab.bsseval`).

Both scorers give a ``museval.TrackStore`` scored the way ``museval.eval_mus_track`` does it
(1 s windows; vocals and accompaniment as a pair of their own, the other targets together),
so the per-track JSON, its schema and museval's aggregation stay the same.

The per-track JSON also carries a stamp, ``{"unmixlab": {"scorer", "scorer_version",
"settings"}}`` (museval's schema allows extra keys): a rerun of an evaluation reuses a track's
scores only when the stamp's settings fingerprint is the rerun's (see :func:`read_scores`).
"""

import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from unmixlab import bsseval
from unmixlab.files import write_text

if TYPE_CHECKING:
    import pandas as pd
    from musdb.audio_classes import MultiTrack
    from museval import TrackStore

Scorer = Literal["unmixlab", "museval"]
SCORERS: tuple[Scorer, ...] = ("unmixlab", "museval")
WINDOW_SECONDS = 1.0  # museval's default window and hop
STAMP_KEY = "unmixlab"


@dataclass(frozen=True)
class Stamp:
    """What a per-track score file was made with.

    Attributes:
        scorer: ``unmixlab-bsseval`` or ``museval``.
        scorer_version: :data:`unmixlab.bsseval.VERSION`, or museval's package version.
        settings: fingerprint of everything else the scores depend on (model, targets, ...).
    """

    scorer: str
    scorer_version: str
    settings: str


def scorer_identity(scorer: Scorer) -> tuple[str, str]:
    """The name and version a scorer's scores are logged with."""
    if scorer == "museval":
        return "museval", version("museval")
    return bsseval.NAME, bsseval.VERSION


def score_track(
    track: "MultiTrack", estimates: dict[str, np.ndarray], scorer: Scorer, device: str = "cpu"
) -> "TrackStore":
    """Score the estimates of one track against its targets, as ``museval.eval_mus_track``.

    Args:
        track: the musdb track (its ``targets`` are the references).
        estimates: target name -> estimate ``(nb_timesteps, nb_channels)`` at the track's rate.
        scorer: ``unmixlab`` (:func:`unmixlab.bsseval.evaluate`) or ``museval``.
        device: where ``unmixlab`` computes (``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        museval's per-track store (frame scores of every scored target).
    """
    import museval

    if scorer == "museval":
        return museval.eval_mus_track(track, estimates, win=WINDOW_SECONDS, hop=WINDOW_SECONDS)
    store = museval.TrackStore(win=WINDOW_SECONDS, hop=WINDOW_SECONDS, track_name=track.name)
    samples = int(WINDOW_SECONDS * track.rate)
    for group, reported in _groups([name for name in track.targets if name in estimates]):
        sdr, isr, sir, sar = bsseval.evaluate(
            [track.targets[name].audio for name in group],
            [estimates[name] for name in group],
            win=samples,
            hop=samples,
            device=device,
        )
        for index, name in enumerate(group):
            if name in reported:
                values = {
                    "SDR": sdr[index],
                    "SIR": sir[index],
                    "ISR": isr[index],
                    "SAR": sar[index],
                }
                store.add_target(name, {key: row.tolist() for key, row in values.items()})
    return store


def _groups(names: list[str]) -> list[tuple[list[str], set[str]]]:
    """The groups museval scores: (targets scored together, those whose scores it keeps).

    With both vocals and accompaniment, the pair is scored on its own and the other targets
    (vocals among them, not kept) together; groups of one target are not scored.
    """
    pair = ["vocals", "accompaniment"]
    if not set(pair) <= set(names):
        return [(names, set(names))] if len(names) >= 2 else []
    rest = [name for name in names if name != "accompaniment"]
    groups = [(rest, set(rest) - {"vocals"})] if len(rest) >= 2 else []
    return [*groups, (pair, set(pair))]


def write_scores(path: Path, store: "TrackStore", stamp: Stamp) -> Path:
    """Write a track's scores as museval's JSON with the stamp added (atomically)."""
    store.scores[STAMP_KEY] = asdict(stamp)
    store.validate()
    return write_text(path, store.json)


def read_scores(path: Path, track: str, settings: str) -> "pd.DataFrame | None":
    """A track's frame scores from an earlier run, if its stamp has these ``settings``.

    Args:
        path: the track's JSON.
        track: the track's name.
        settings: the fingerprint the scores must have been made with.

    Returns:
        museval's frame table of the track, or None: no file, unreadable, or made with other
        settings (then the track is scored again).
    """
    from museval.aggregate import json2df

    try:
        scores: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    stamp = scores.get(STAMP_KEY)
    if not isinstance(stamp, dict) or stamp.get("settings") != settings:
        return None
    return json2df(scores, track)
