"""What several test modules share: the tiny training and what its tracked run logs per epoch."""

from pathlib import Path

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
