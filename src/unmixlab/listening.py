"""Results to listen to: excerpts of each scored track, and one page of players beside the SDR.

Each track gets ``<track>/mixture.mp3``, ``<track>/<stem>.mp3`` (the estimate) and
``<track>/<stem>.reference.mp3``, cut from the same window in every run (``excerpt_seconds``
from ``excerpt_start``, by default the middle of the track), so that two runs can be compared
by ear. The page
(``index.html``, rendered from ``templates/listening.html.j2``) puts an ``<audio>`` player
per excerpt beside the track's SDR for that stem. The copy on disk links its excerpts by
relative path; the copy logged to MLflow links them through the UI's artifact address, since
MLflow shows an HTML artifact in a sandboxed frame where relative links resolve nowhere.
"""

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jinja2
from torch import Tensor

from unmixlab.audio import write_audio
from unmixlab.config import TARGETS

PAGE = "index.html"
EXCERPT_SUFFIX = ".mp3"  # a few hundred kB per excerpt, and every browser plays it
MP3 = "MPEG_LAYER_III"


@dataclass(frozen=True)
class StemExcerpt:
    """One separated stem of a track: its SDR and its two excerpts (paths in the folder)."""

    name: str
    sdr: float | None  # museval's median over the track's frames, dB; None if undefined
    estimate: str
    reference: str


@dataclass(frozen=True)
class TrackExcerpts:
    """A scored track's excerpts, paths relative to the listening folder."""

    name: str
    mixture: str
    stems: tuple[StemExcerpt, ...]


def excerpt_window(nb_frames: int, rate: int, seconds: float, start: float | None = None) -> slice:
    """``seconds`` of a track from ``start`` s (None: the middle), the same for every run.

    The window keeps its length inside the track: a start too late moves it back; a track
    shorter than ``seconds`` is taken whole.
    """
    length = min(nb_frames, round(seconds * rate))
    first = (nb_frames - length) // 2 if start is None else round(start * rate)
    first = min(first, nb_frames - length)
    return slice(first, first + length)


def write_excerpts(
    folder: Path,
    rate: int,
    mixture: Tensor,
    estimates: Mapping[str, Tensor],
    references: Mapping[str, Tensor],
    seconds: float,
    start: float | None = None,
) -> None:
    """Write the mixture, each estimate and its reference, cut to :func:`excerpt_window`.

    Args:
        folder: the track's folder (created).
        rate: sample rate of all the audio.
        mixture: ``(nb_channels, nb_frames)``.
        estimates: stem name -> ``(nb_channels, nb_frames)``.
        references: stem name -> ``(nb_channels, nb_frames)``, for each estimate.
        seconds: excerpt length.
        start: where the excerpts start, in seconds (None: centred).
    """
    window = excerpt_window(mixture.shape[-1], rate, seconds, start)
    clips = {"mixture": mixture}
    for name, estimate in estimates.items():
        clips[name] = estimate
        clips[f"{name}.reference"] = references[name]
    for name, audio in clips.items():
        excerpt = folder / f"{name}{EXCERPT_SUFFIX}"
        # a loud, clipped estimate is what the page should let one hear
        write_audio(excerpt, audio[:, window], rate, subtype=MP3, max_clipped=None)


def track_excerpts(
    track: str, stems: Collection[str], sdr: Mapping[tuple[str, str], float]
) -> TrackExcerpts:
    """What :func:`write_excerpts` wrote for ``track``, with each stem's SDR.

    Args:
        track: the track's name (its folder).
        stems: the estimated stems, in page order.
        sdr: ``(track, stem)`` -> SDR in dB (missing or NaN: undefined).
    """
    score = {stem: sdr.get((track, stem)) for stem in stems}
    return TrackExcerpts(
        track,
        f"{track}/mixture{EXCERPT_SUFFIX}",
        tuple(
            StemExcerpt(
                stem,
                None if score[stem] is None or score[stem] != score[stem] else float(score[stem]),
                f"{track}/{stem}{EXCERPT_SUFFIX}",
                f"{track}/{stem}.reference{EXCERPT_SUFFIX}",
            )
            for stem in stems
        ),
    )


def render_page(
    tracks: list[TrackExcerpts],
    title: str,
    excerpt_seconds: float,
    link: Callable[[str], str] = quote,
) -> str:
    """The listening page as HTML; ``link`` turns an excerpt's path into its address."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("unmixlab", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("listening.html.j2")
    return template.render(tracks=tracks, title=title, excerpt_seconds=excerpt_seconds, link=link)


def for_targets(tracks: list[TrackExcerpts], targets: Collection[str]) -> list[TrackExcerpts]:
    """The stems one target's run shows: its targets, and what no model separates (residual)."""
    return [
        TrackExcerpts(
            t.name,
            t.mixture,
            tuple(s for s in t.stems if s.name in targets or s.name not in TARGETS),
        )
        for t in tracks
    ]
