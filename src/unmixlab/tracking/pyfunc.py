"""The separator as an MLflow pyfunc model: what ``mlflow models serve`` and the registry serve.

One input row is one clip: ``audio`` is ``(nb_channels, nb_timesteps)`` float samples (nested
lists in JSON) at ``sample_rate`` Hz. One output row holds one column per target, each
``(nb_channels, nb_timesteps)`` at the input's rate. A served model answers e.g.::

    POST /invocations
    {"dataframe_records": [{"audio": [[0.0, 0.1, ...], [0.0, 0.1, ...]], "sample_rate": 44100}]}
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

import unmixlab
from unmixlab.errors import UnmixlabError

MODEL_DIR = "model_dir"  # key of the reference-layout model folder in the pyfunc artifacts
# what the separator imports, pinned to this environment's versions
REQUIREMENTS = (
    "mlflow",
    "torch",
    "torchaudio",
    "numpy",
    "pandas",
    "norbert",
    "soundfile",
    "pydantic",
    "tqdm",
)


class SeparatorModel(mlflow.pyfunc.PythonModel):
    """Wraps :class:`unmixlab.separator.Separator` loaded from the logged model folder."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load the separator (all targets of ``separator.json``, one Wiener iteration)."""
        from unmixlab.separator import load_separator

        self.separator = load_separator(Path(context.artifacts[MODEL_DIR]))

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict | None = None,
    ) -> pd.DataFrame:
        """Separate each row's clip.

        Args:
            context: the pyfunc context (unused after loading).
            model_input: columns ``audio`` (``(nb_channels, nb_timesteps)`` per row) and
                ``sample_rate``.
            params: unused.

        Returns:
            One row per clip, one column per target holding ``(nb_channels, nb_timesteps)``
            nested lists.
        """
        rows = []
        for audio, rate in zip(model_input["audio"], model_input["sample_rate"], strict=True):
            mixture = torch.as_tensor(np.stack([np.asarray(c, np.float32) for c in audio]))
            if mixture.ndim != 2 or mixture.shape[-1] == 0:
                raise UnmixlabError(
                    f"audio must be (nb_channels, nb_timesteps), got shape {tuple(mixture.shape)}",
                    "Send one list of samples per channel",
                )
            estimates = self.separator.separate(mixture, int(rate), progress=False)
            rows.append({name: estimate.numpy().tolist() for name, estimate in estimates.items()})
        return pd.DataFrame(rows, columns=self.separator.targets)


def signature_for(targets: list[str]) -> ModelSignature:
    """Input ``audio`` (nested number arrays) and ``sample_rate``; one such array per target."""
    samples = Array(Array(DataType.double))  # (nb_channels, nb_timesteps); JSON numbers
    return ModelSignature(
        inputs=Schema([ColSpec(samples, "audio"), ColSpec(DataType.long, "sample_rate")]),
        outputs=Schema([ColSpec(samples, target) for target in targets]),
    )


def input_example(sample_rate: int, nb_channels: int, nb_timesteps: int) -> pd.DataFrame:
    """A silent clip of ``nb_timesteps`` samples, saved with the model as its serving example."""
    silence = np.zeros((nb_channels, nb_timesteps), np.float32).tolist()
    return pd.DataFrame({"audio": [silence], "sample_rate": [sample_rate]})


def pip_requirements() -> list[str]:
    """The separator's dependencies, pinned to the installed versions."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def log_separator_model(client: mlflow.MlflowClient, run_id: str, model_dir: Path) -> str:
    """Log ``model_dir`` (reference layout) as the pyfunc model ``model`` of ``run_id``.

    The model is built from code (``served_model.py``), never unpickled; the ``unmixlab``
    package travels with it (``code_paths``), so a served environment needs only the pinned
    requirements.

    Returns:
        The logged model's URI (``models:/<model_id>``).
    """
    from unmixlab.model_io import read_separator_json

    meta = read_separator_json(model_dir)
    run = client.get_run(run_id)
    # created here so that it belongs to the run's experiment (MLflow would pick the
    # thread's active experiment)
    logged = client.create_logged_model(
        run.info.experiment_id,
        name="model",
        source_run_id=run_id,
        params=run.data.params,
        model_type="separator",
    )
    # what mlflow.pyfunc.log_model does, for an explicit run instead of the active one
    info = mlflow.models.Model.log(
        artifact_path=None,
        name="model",
        flavor=mlflow.pyfunc,
        run_id=run_id,
        model_id=logged.model_id,
        python_model=str(Path(__file__).with_name("served_model.py")),
        artifacts={MODEL_DIR: str(model_dir)},
        code_paths=[str(Path(unmixlab.__file__).parent)],
        signature=signature_for(meta["targets"]),
        input_example=input_example(meta["sample_rate"], meta["nb_channels"], 2 * meta["nfft"]),
        pip_requirements=pip_requirements(),
    )
    return info.model_uri
