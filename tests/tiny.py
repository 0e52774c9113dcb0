"""What several test modules share: the tiny training and what its tracked run logs per epoch."""

from pathlib import Path

import yaml

from unmixlab.config import TrainConfig

# the metrics a tracked training logs every epoch (step = epoch)
PER_EPOCH_METRICS = (
    "train_loss",
    "valid_loss",
    "valid_sdr",
    "lr",
    "epoch_seconds",
    "train_seconds",
    "samples_per_second",
)


def tiny_config(root: Path, output: Path, cache: Path, **changes: object) -> TrainConfig:
    """A model and schedule small enough to train a few epochs in seconds."""
    settings = dict(
        root=root,
        is_wav=True,
        target="vocals",
        epochs=2,
        batch_size=4,
        samples_per_track=4,
        seq_dur=1.0,
        nfft=512,
        nhop=128,
        hidden_size=16,
        sample_rate=16000,
        bandwidth=8000,
        seed=0,
        output=output,
        cache_dir=cache,
    )
    return TrainConfig(**{**settings, **changes})


def reduced_preset(folder: Path, root: Path) -> Path:
    """A replication pair, a two-point design, its unidirectional twins, tiny data."""
    preset = {
        "description": "reduced seed study for the tests",
        "experiment": "study-test",
        "targets": ["vocals"],
        "output": str(folder / "runs"),
        "data": {"root": str(root), "is_wav": True, "cache_dir": str(folder / "cache")},
        "train": {
            "sample_rate": 16000,
            "bandwidth": 8000,
            "nfft": 512,
            "nhop": 128,
            "seq_dur": 1.0,
            "seed": 0,
        },
        "evaluate": {"workers": 1},
        "promote": {"enabled": False},
        "study": {
            "budget": {"samples": 24},  # 3 training tracks x 4 samples: two epochs
            "analysis": {
                "h2_pair": ["centre", "centre-uni"],
                "timing_repeats": 2,
                "timing_warmup": 1,
            },
            "realtime_seconds": 1.0,
            "configurations": [
                {  # the replication: epochs as the seed ran them
                    "name": "small",
                    "protocol": "seed",
                    "batch_size": 4,
                    "hidden_size": 16,
                    "samples_per_track": 4,
                    "epochs": 1,
                    "reference": {"loss": 9.536, "time": "7:50"},
                },
                {
                    "name": "large",
                    "protocol": "seed",
                    "batch_size": 8,
                    "hidden_size": 32,
                    "samples_per_track": 4,
                    "epochs": 1,
                    "reference": {"loss": 11.2, "time": "7:42"},
                },
                # the design: an equal budget of training samples
                {"name": "centre", "batch_size": 4, "hidden_size": 16, "samples_per_track": 4},
                {"name": "wide", "batch_size": 8, "hidden_size": 32, "samples_per_track": 4},
                {  # its unidirectional twin: streamed at a live pace (H2)
                    "name": "centre-uni",
                    "batch_size": 4,
                    "hidden_size": 16,
                    "samples_per_track": 4,
                    "unidirectional": True,
                },
                {  # a shorter window in 1-hop blocks: the quality cost of latency (H2)
                    "name": "centre-uni-short",
                    "batch_size": 4,
                    "hidden_size": 16,
                    "samples_per_track": 4,
                    "unidirectional": True,
                    "nfft": 256,
                    "nhop": 64,
                    "block_hops": 1,
                },
            ],
        },
    }
    path = folder / "reduced.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path
