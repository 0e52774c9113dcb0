"""The prepare step: make the synthetic data set if asked, check the data, decode its cache."""

from pathlib import Path

from unmixlab.config import DataConfig
from unmixlab.prepare import PreparedData, prepare
from unmixlab.synth import SynthSettings, synthesize


def synthesize_data(root: Path, settings: SynthSettings) -> bool:
    """Write the synthetic data set ``settings`` describes into ``root`` unless one is there.

    Returns:
        Whether it was written now (False: ``root`` held a data set already).

    Raises:
        UnmixlabError: ``root`` exists but holds no data set (not empty, no ``train/``).
    """
    if (Path(root) / "train").is_dir():
        return False
    synthesize(root, settings)
    return True


def prepare_data(config: DataConfig) -> PreparedData:
    """Check ``config.root/train``, split off validation tracks, decode them into the cache.

    Raises:
        UnmixlabError: the root or one of its tracks is unusable (the message names it).
    """
    return prepare(config)
