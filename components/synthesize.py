"""Prefect task ``synthesize``: make the synthetic data set a preset asks for, once."""

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.runtime import run_logger
from unmixlab.steps.prepare import synthesize_data
from unmixlab.synth import SynthSettings


@task(name="synthesize", cache_policy=NO_CACHE)
def synthesize(root: Path, settings: SynthSettings) -> Path:
    """Write the synthetic data set to ``root`` unless it holds one already; return ``root``.

    Raises:
        UnmixlabError: ``root`` exists but holds no data set (not empty, no ``train/``).
    """
    if synthesize_data(root, settings):
        run_logger().info(
            "synthesised %d train tracks of %g s at %d Hz in %s",
            settings.tracks,
            settings.seconds,
            settings.sample_rate,
            root,
        )
    else:
        run_logger().info("using the data set in %s", root)
    return Path(root)
