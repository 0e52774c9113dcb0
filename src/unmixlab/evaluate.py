"""Evaluate a model folder on MUSDB test tracks with BSS Eval v4 (SDR, SIR, SAR, ISR).

Each track is separated at the model's sample rate, resampled back to the track's rate and
scored in a worker process by :mod:`unmixlab.bsseval` (museval's numbers, many times faster;
the default) or by museval itself (``scorer="museval"``, about one core second per second of
audio for four targets). Scores are aggregated the way museval reports them: median over the
one-second frames of a track, then median over tracks.

Outputs in ``out_dir``: ``<subset>/<track>.json`` (museval's per-track format, written as each
track is scored), ``tracks.csv`` (per-track medians), ``scores.csv`` and ``scores.md`` (the
aggregate), and ``listen/``: excerpts of every track and a page to listen to them
(:mod:`unmixlab.listening`).

Resuming: a rerun with the same ``out_dir`` scores only the tracks without a per-track JSON
made with the same settings (model files, targets, scorer, separation and output settings,
data root: their fingerprint is stamped in the JSON); the others are read back.
"""

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from unmixlab.config import TARGETS
from unmixlab.data.tracks import discover
from unmixlab.errors import UnmixlabError
from unmixlab.files import write_text
from unmixlab.listening import (
    PAGE,
    TrackExcerpts,
    render_page,
    track_excerpts,
    write_excerpts,
)
from unmixlab.progress import tqdm
from unmixlab.quantize import Precision, inference_device
from unmixlab.render import markdown_table
from unmixlab.scoring import Scorer, Stamp, read_scores, score_track, scorer_identity, write_scores
from unmixlab.tracking.schema import SEPARATION_METRICS

if TYPE_CHECKING:
    import pandas as pd
    from museval import EvalStore

METRICS = SEPARATION_METRICS  # museval's four scores, in table order
LISTEN_DIR = "listen"  # excerpts and their page, in the evaluation folder
EXCERPT_SECONDS = 15.0


@dataclass(frozen=True)
class Evaluation:
    """Aggregate museval scores of one model folder on one subset.

    Attributes:
        aggregate: target -> metric (``SDR``, ``SIR``, ``SAR``, ``ISR``) -> dB, median over
            frames then over tracks (NaN where museval had no defined frame).
        per_track_dir: folder of museval's per-track JSON files.
        table_path: the aggregate as CSV (one row per target).
        markdown_path: the aggregate as a markdown table.
        tracks_path: per-track medians as CSV.
        tracks: names of the scored tracks.
        seconds: wall time of the evaluation.
        listen_dir: the excerpts and their page ``index.html`` (None: no excerpts).
        excerpts: each track's excerpts and SDR per stem, in track order.
        excerpt_seconds: length of each excerpt.
        scorer: the scorer's name (``unmixlab-bsseval`` or ``museval``).
        scorer_version: its version (:data:`unmixlab.bsseval.VERSION`, museval's package's).
        reused: tracks whose scores an earlier run had written, read back instead of scored.
    """

    aggregate: dict[str, dict[str, float]]
    per_track_dir: Path
    table_path: Path
    markdown_path: Path
    tracks_path: Path
    tracks: tuple[str, ...]
    seconds: float
    listen_dir: Path | None = None
    excerpts: tuple[TrackExcerpts, ...] = ()
    excerpt_seconds: float = 0.0
    scorer: str = ""
    scorer_version: str = ""
    reused: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Job:
    """What a worker needs to score one track (plain, picklable values)."""

    root: str
    is_wav: bool
    subset: str
    track: str
    out_dir: Path
    estimates_dir: Path | None
    excerpt_seconds: float  # 0: no excerpts
    excerpt_start: float | None  # None: centred
    stamp: Stamp  # written into the track's JSON


class _TrackScorer:
    """Separates and scores tracks with one loaded separator."""

    def __init__(
        self,
        model_dir: Path,
        targets: list[str],
        niter: int,
        residual: str | None,
        device: str = "auto",
        precision: Precision = "float32",
        scorer: Scorer = "unmixlab",
    ):
        from unmixlab.device import resolve_device
        from unmixlab.separator import load_separator

        self.separator = load_separator(
            model_dir,
            targets,
            niter=niter,
            residual=bool(residual),
            device=device,
            precision=precision,
        )
        self.targets = targets
        self.residual = residual
        self.scorer = scorer
        self.scoring_device = str(resolve_device(device))  # the GPU where there is one

    def __call__(self, job: _Job) -> "pd.DataFrame":
        """Separate one track, score it, write its JSON; return museval's frame table."""
        import musdb
        from musdb.audio_classes import Target

        from unmixlab.audio import match_channels, write_audio

        track = next(
            t
            for t in musdb.DB(root=job.root, subsets=job.subset, is_wav=job.is_wav)
            if t.name == job.track
        )
        mixture = torch.from_numpy(track.audio.T.astype("float32"))  # (nb_channels, nb_timesteps)
        separated = self.separator.separate(mixture, int(track.rate), progress=False)
        names = [*self.targets, self.residual] if self.residual else self.targets
        estimates = {
            name: match_channels(audio, mixture.shape[0])
            for name, audio in zip(names, separated.values(), strict=True)
        }  # name -> (nb_channels, nb_timesteps) at the track's rate
        if self.residual == "residual":  # everything the model does not separate
            rest = [track.sources[s] for s in TARGETS if s not in self.targets]
            track.targets["residual"] = Target(track, sources=rest, name="residual")
        if job.estimates_dir is not None:
            for name, audio in estimates.items():
                path = job.estimates_dir / job.subset / job.track / f"{name}.wav"
                write_audio(path, audio, int(track.rate), subtype="FLOAT")
        if job.excerpt_seconds > 0:
            references = {
                name: torch.from_numpy(track.targets[name].audio.T.astype("float32"))
                for name in estimates
            }  # name -> (nb_channels, nb_timesteps)
            write_excerpts(
                job.out_dir / LISTEN_DIR / job.track,
                int(track.rate),
                mixture,
                estimates,
                references,
                job.excerpt_seconds,
                job.excerpt_start,
            )
        scores = score_track(
            track,
            {name: audio.T.numpy() for name, audio in estimates.items()},
            self.scorer,
            self.scoring_device,
        )
        write_scores(job.out_dir / job.subset / f"{job.track}.json", scores, job.stamp)
        return scores.df


# one per worker process, set by _init_worker; the error instead when it could not be built
_SCORER: "_TrackScorer | Exception | None" = None


def _init_worker(
    model_dir: Path,
    targets: list[str],
    niter: int,
    residual: str | None,
    threads: int,
    device: str,
    precision: Precision,
    scorer: Scorer,
) -> None:
    global _SCORER
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)  # museval's BLAS: workers share the cores, not oversubscribe
    try:
        _SCORER = _TrackScorer(model_dir, targets, niter, residual, device, precision, scorer)
    except Exception as error:  # raised by the first job: a failed initializer respawns forever
        _SCORER = error


def _score_in_worker(job: _Job) -> "pd.DataFrame":
    if isinstance(_SCORER, Exception):
        raise _SCORER
    return _SCORER(job)


def score_models(
    root: Path,
    model_dir: Path,
    *,
    is_wav: bool = True,
    targets: list[str] | None = None,
    out_dir: Path,
    subset: str = "test",
    workers: int | None = None,
    niter: int = 1,
    residual: bool = False,
    keep_estimates: bool = False,
    excerpt_seconds: float = EXCERPT_SECONDS,
    excerpt_start: float | None = None,
    device: str = "auto",
    precision: Precision = "float32",
    scorer: Scorer = "unmixlab",
) -> Evaluation:
    """Separate and score every track of ``root/subset``; write and return the scores.

    Tracks an earlier run with the same ``out_dir`` and settings already scored are read back,
    not scored again (a killed or failed evaluation resumes).

    A single-target model also estimates everything else (museval scores no fewer than two
    estimates): ``accompaniment`` for a vocals model, else ``residual``. Its scores are part
    of the aggregate only with ``residual=True``.

    Args:
        root: MUSDB18 folder (stems ``.mp4``, or HQ wav with ``is_wav``).
        model_dir: model folder in the Open-Unmix layout (``separator.json``, ``<target>.pth``).
        is_wav: the root holds MUSDB18-HQ wav folders.
        targets: targets to separate; default: every model in the folder.
        out_dir: folder for the per-track JSON files and tables.
        subset: ``test`` (or ``train``).
        workers: scoring processes; default ``min(2, cpu count)``.
        niter: Wiener filter iterations of the separator.
        residual: also score (and report) everything the targets leave in the mixture.
        keep_estimates: write the estimates as float wav under ``out_dir/estimates``.
        excerpt_seconds: length of the excerpts to listen to (0: none), see
            :mod:`unmixlab.listening`.
        excerpt_start: seconds into each track where the excerpts start (None: centred).
        device: where the models separate and unmixlab's scorer computes (``auto``: CUDA
            when available; the scoring processes share it).
        precision: ``float32`` or ``int8`` weights (:mod:`unmixlab.quantize`, CPU only).
        scorer: ``unmixlab`` (:mod:`unmixlab.bsseval`) or ``museval`` (the reference).

    Raises:
        UnmixlabError: bad root or model folder, unknown target, or nothing left for a residual.
    """
    try:
        import museval  # imports musdb, whose stempeg needs ffmpeg at import time
    except RuntimeError as error:
        raise UnmixlabError(
            f"museval needs ffmpeg and ffprobe on PATH ({error})",
            "Install ffmpeg, or evaluate on a machine that has it (training on wav needs none)",
        ) from error

    from unmixlab.model_io import read_separator_json

    start = time.perf_counter()
    # an unavailable device or precision fails here, not in every worker
    inference_device(device, precision)
    tracks = discover(root, is_wav, subset)
    available = read_separator_json(model_dir)["targets"]
    targets = list(targets or available)
    unknown = [t for t in targets if t not in available]
    if unknown or not targets:
        raise UnmixlabError(
            f"no model for target(s) {', '.join(unknown) or '(none)'}",
            f"Pick --targets among {', '.join(available) or 'the trained targets'}",
            model_dir,
        )
    residual_name = _residual_name(targets, residual, model_dir)
    workers = workers or min(2, os.cpu_count() or 1)
    out_dir = Path(out_dir)
    settings = {
        "root": str(Path(root).resolve()),
        "targets": [*targets, residual_name],
        "niter": niter,
        "precision": precision,
        "excerpt_seconds": excerpt_seconds,
        "excerpt_start": excerpt_start,
        "keep_estimates": keep_estimates,
    }
    stamp = _stamp(scorer, settings, model_dir, targets)
    store = museval.EvalStore(frames_agg="median", tracks_agg="median")
    reused = _read_back(store, [t.name for t in tracks], out_dir / subset, stamp)
    estimates_dir = out_dir / "estimates" if keep_estimates else None
    jobs = [
        _Job(
            str(root),
            is_wav,
            subset,
            t.name,
            out_dir,
            estimates_dir,
            excerpt_seconds,
            excerpt_start,
            stamp,
        )
        for t in tracks
        if t.name not in reused
    ]
    progress = tqdm(total=len(jobs), desc=f"evaluating {subset} tracks", unit="track")
    if workers == 1 and jobs:
        track_scorer = _TrackScorer(
            model_dir, targets, niter, residual_name, device, precision, scorer
        )
        for job in jobs:
            store.add_track(track_scorer(job))
            progress.update()
    elif jobs:
        threads = max(1, (os.cpu_count() or 1) // workers)
        # an error or interrupt leaves the block, which terminates the workers at once
        with multiprocessing.get_context("spawn").Pool(
            workers,
            initializer=_init_worker,
            initargs=(
                Path(model_dir),
                targets,
                niter,
                residual_name,
                threads,
                device,
                precision,
                scorer,
            ),
        ) as pool:
            for frame in pool.imap_unordered(_score_in_worker, jobs):
                store.add_track(frame)
                progress.update()
            # done: let the workers exit on their own, so that they release what they hold
            # (a terminated worker leaks its semaphores: a resource_tracker warning at exit)
            pool.close()
            pool.join()
    progress.close()

    reported = [*targets, residual_name] if residual and residual_name else targets
    scores = store.agg_frames_tracks_scores()  # (target, metric) -> dB
    aggregate = {
        target: {metric: float(scores.get((target, metric), float("nan"))) for metric in METRICS}
        for target in reported
    }
    per_track = store.agg_frames_scores().unstack("metric")  # (track, target) x metric
    tracks_path = write_text(out_dir / "tracks.csv", per_track.to_csv(float_format="%.4f"))
    table_path = write_text(out_dir / "scores.csv", scores_csv(aggregate))
    markdown_path = write_text(out_dir / "scores.md", scores_markdown(aggregate))
    listen_dir, excerpts = None, ()
    if excerpt_seconds > 0:
        listen_dir = out_dir / LISTEN_DIR
        sdr = per_track["SDR"].to_dict()  # (track, stem) -> dB
        stems = [*targets, residual_name] if residual_name else targets
        excerpts = tuple(track_excerpts(t.name, stems, sdr) for t in tracks)
        page = render_page(list(excerpts), listening_title(model_dir, subset), excerpt_seconds)
        write_text(listen_dir / PAGE, page)
    return Evaluation(
        aggregate,
        out_dir / subset,
        table_path,
        markdown_path,
        tracks_path,
        tuple(t.name for t in tracks),
        time.perf_counter() - start,
        listen_dir,
        excerpts,
        excerpt_seconds,
        stamp.scorer,
        stamp.scorer_version,
        reused,
    )


def _stamp(scorer: Scorer, settings: dict, model_dir: Path, targets: list[str]) -> Stamp:
    """The stamp of this evaluation's per-track scores: scorer, and a fingerprint of the rest.

    The fingerprint is a sha256 of the scorer, the settings and the model files the targets
    are separated with.
    """
    name, version = scorer_identity(scorer)
    digest = hashlib.sha256(json.dumps([name, version, settings], sort_keys=True).encode())
    for file in (
        "separator.json",
        *(f"{t}.{suffix}" for t in targets for suffix in ("json", "pth")),
    ):
        path = Path(model_dir) / file
        digest.update(file.encode() + (path.read_bytes() if path.exists() else b""))
    return Stamp(name, version, digest.hexdigest())


def _read_back(
    store: "EvalStore", tracks: list[str], folder: Path, stamp: Stamp
) -> tuple[str, ...]:
    """Add the tracks an earlier run scored with the same stamp to ``store``; return them."""
    reused = []
    for track in tracks:
        scores = read_scores(folder / f"{track}.json", track, stamp.settings)
        if scores is not None:
            store.add_track(scores)
            reused.append(track)
    return tuple(reused)


def listening_title(model_dir: Path, subset: str) -> str:
    """The listening page's title: which model, on which tracks."""
    return f"Listening: {Path(model_dir).name} on the {subset} tracks"


def _residual_name(targets: list[str], requested: bool, model_dir: Path) -> str | None:
    """Name of the extra estimate museval needs or the user asked for (None: no residual)."""
    if set(targets) >= set(TARGETS):
        if requested:
            raise UnmixlabError(
                "the targets cover every stem: there is no residual to score",
                "Drop --residual, or pick fewer --targets",
                model_dir,
            )
        return None
    if len(targets) > 1 and not requested:
        return None
    return "accompaniment" if targets == ["vocals"] else "residual"


def scores_csv(aggregate: dict[str, dict[str, float]]) -> str:
    """The aggregate as CSV text: ``target,SDR,SIR,SAR,ISR``."""
    lines = ["target," + ",".join(METRICS)]
    lines += [f"{t}," + ",".join(f"{s[m]:.4f}" for m in METRICS) for t, s in aggregate.items()]
    return "\n".join(lines) + "\n"


def scores_markdown(aggregate: dict[str, dict[str, float]]) -> str:
    """The aggregate as a markdown table, in dB."""
    header = ["target", *(f"{m} (dB)" for m in METRICS)]
    rows = [[t, *(f"{s[m]:.2f}" for m in METRICS)] for t, s in aggregate.items()]
    return markdown_table(header, rows)
