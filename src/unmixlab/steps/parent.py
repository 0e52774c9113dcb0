"""A flow's parent MLflow run, opened the same way by every engine: settings as params.

The targets' (or a study's) training runs nest under it; it holds the experiment settings
(params and ``experiment.json``) and, once the flow ends, its status and summary metrics.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

from unmixlab.tracking.names import describe_experiment
from unmixlab.tracking.parent_run import ParentRun
from unmixlab.tracking.schema import NOTE_TAG, PRESET_TAG

if TYPE_CHECKING:  # the steps take a preset's sections; only this reads a whole preset
    from unmixlab.experiment import ExperimentConfig


def start_parent_run(
    config: "ExperimentConfig", run_name: str, tags: Mapping[str, str]
) -> ParentRun:
    """Create the parent run in ``config.experiment`` with the settings as params.

    Raises:
        UnmixlabError: the tracking store is unreachable or the experiment deleted.
    """
    settings = config.model_dump(mode="json")
    tags = {PRESET_TAG: config.name, NOTE_TAG: config.description, **tags}
    parent = ParentRun.start(config.experiment, run_name, tags=tags, settings=settings)
    describe_experiment(parent.client, parent.experiment_id, config.name, config.description)
    parent.client.log_dict(parent.run_id, settings, "experiment.json")
    return parent
