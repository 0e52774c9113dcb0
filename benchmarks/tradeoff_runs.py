"""The real-time trade-off's benchmark driver: train, score and stream each setting.

Each :class:`~unmixlab.study.tradeoff.Setting` is trained on the same data with the same seeds
and epochs, scored by museval without the Wiener filter (``niter 0``: the stream takes the
mixture phase; a causal model's offline output is its stream up to the framing of the first
and last frames) and, when causal, measured by the caller's ``measure``. The study's
presentation (table, Pareto plot, JSON) is :mod:`unmixlab.study.tradeoff`.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from unmixlab.config import TrainConfig
from unmixlab.study.results import Stat
from unmixlab.study.tradeoff import Setting, TradeoffPoint

# issue 18: 116 ms (the default), 23.2 ms and 11.6 ms at 44.1 kHz, each with float32 and int8
# weights, and the offline reference
SETTINGS = (
    Setting("causal 4096/1024", 4096, 1024, 2),
    Setting("causal 4096/1024 int8", 4096, 1024, 2, precision="int8"),
    Setting("causal 1024/256", 1024, 256, 1),
    Setting("causal 1024/256 int8", 1024, 256, 1, precision="int8"),
    Setting("causal 512/128", 512, 128, 1),
    Setting("causal 512/128 int8", 512, 128, 1, precision="int8"),
    Setting("bidirectional 4096/1024", 4096, 1024, causal=False),
)


def train_and_score(
    base: TrainConfig,
    settings: Sequence[Setting],
    seeds: Sequence[int],
    out_dir: Path,
    measure: Callable[[Setting], tuple[float, float, float]],
    progress: Callable[[str], None] = print,
) -> list[TradeoffPoint]:
    """Train every setting with every seed on ``base``'s data, score it, measure it.

    Settings that differ only in precision share their trained models (trained once).

    Args:
        base: the training settings every run shares (data, target, epochs, hidden size...);
            each setting changes nfft, hop and direction, each seed the seed.
        settings: the settings.
        seeds: training seeds (the same for every setting).
        out_dir: models and evaluations go to ``out_dir/<setting>/seed<k>``.
        measure: setting -> ``(latency_ms, stream_rtf, stream_cpu_rtf)`` (causal settings).
        progress: receives one line per finished run.

    Returns:
        one point per setting, in order.
    """
    from unmixlab.evaluate import score_models
    from unmixlab.trainer import train

    points, trained = [], {}
    for setting in settings:
        scores = []
        for seed in seeds:
            folder = out_dir / setting.name.replace(" ", "-").replace("/", "-") / f"seed{seed}"
            key = (setting.nfft, setting.nhop, setting.causal, seed)
            if key not in trained:
                config = base.updated(
                    nfft=setting.nfft,
                    nhop=setting.nhop,
                    unidirectional=setting.causal,
                    seed=seed,
                    output=folder / "model",
                )
                trained[key] = train(config).output
            evaluation = score_models(
                base.data.root,
                trained[key],
                is_wav=base.data.is_wav,
                out_dir=folder / "evaluation",
                niter=0,
                workers=1,
                precision=setting.precision,
            )
            scores.append(evaluation.aggregate[base.run.target]["SDR"])
            progress(f"{setting.name} seed {seed}: SDR {scores[-1]:.2f} dB")
        figures = measure(setting) if setting.causal else ()
        points.append(TradeoffPoint(setting, Stat.of(scores), *figures))
    return points
