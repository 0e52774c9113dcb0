"""The separator as an MLflow pyfunc model: what ``mlflow models serve`` and the registry serve.

One input row is one clip at ``sample_rate`` Hz. ``audio`` is laid out as soundfile and numpy
give it: ``(nb_frames, nb_channels)`` nested lists (``[[left, right], ...]``), or a flat list
of samples for mono. One output row holds one column per target, each in the input's layout
and channel count (mono stays mono) at the input's rate. A served model answers e.g.::

    POST /invocations
    {"dataframe_records": [{"audio": [[0.0, 0.1], [0.0, 0.1], ...], "sample_rate": 44100}]}

A clip shorter than one STFT window, a ``(nb_channels, nb_frames)`` array, ragged samples, or
samples that are not audio (NaN, infinite, beyond +/-:data:`unmixlab.audio.SAMPLE_LIMIT`) are
answered with HTTP 400 and a one-line message.
"""

import json
import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

import unmixlab
from unmixlab.audio import check_samples, match_channels
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


class BadAudio(MlflowException):
    """A clip the model refuses; the scoring server answers HTTP 400 with this one line.

    MLflow's scoring server prefixes the message of an error raised in ``predict`` with the
    whole request; the response keeps only the line that says what is wrong.
    """

    def __init__(self, problem: str):
        super().__init__(problem, error_code=INVALID_PARAMETER_VALUE)
        self.problem = problem

    def serialize_as_json(self) -> str:
        """``{"error_code": "INVALID_PARAMETER_VALUE", "message": <the problem>}``."""
        return json.dumps({"error_code": self.error_code, "message": self.problem})


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
            model_input: columns ``audio`` (``(nb_frames, nb_channels)``, or ``(nb_frames,)``
                for mono, per row) and ``sample_rate``.
            params: unused.

        Returns:
            One row per clip, one column per target holding the estimate in the input's
            layout: ``(nb_frames, nb_channels)`` nested lists, or a flat list for mono.

        Raises:
            BadAudio: a clip is malformed or too short (HTTP 400 when served).
        """
        separator = self.separator
        window_seconds = separator.stft.nfft / separator.sample_rate  # the shortest clip
        rows = []
        for audio, rate in zip(model_input["audio"], model_input["sample_rate"], strict=True):
            mixture, mono = read_clip(audio, rate, window_seconds)
            try:
                estimates = separator.separate(mixture, int(rate), progress=False)
            except UnmixlabError as error:  # never NaN in the JSON answer
                raise BadAudio(str(error)) from None
            rows.append(
                {
                    name: to_frames_first(match_channels(estimate, mixture.shape[0]), mono)
                    for name, estimate in estimates.items()
                }
            )
        return pd.DataFrame(rows, columns=separator.targets)


def read_clip(audio: object, rate: object, min_seconds: float) -> tuple[torch.Tensor, bool]:
    """Check one request's clip and lay it out for the separator.

    Args:
        audio: ``(nb_frames, nb_channels)`` nested lists (1 or 2 channels) or a flat list.
        rate: its sample rate in Hz.
        min_seconds: the shortest clip the model separates (one STFT window).

    Returns:
        The clip as ``(nb_channels, nb_frames)`` float32, and whether it came as a flat list.

    Raises:
        BadAudio: what is wrong, and how to send it instead.
    """
    if not isinstance(rate, int | np.integer) or rate <= 0:
        raise BadAudio(f"sample_rate must be a positive whole number of Hz, got {rate!r}")
    try:
        samples = np.asarray(audio, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadAudio(
            "audio must be a list of numbers (mono) or of [left, right] frames of equal length"
        ) from None
    if samples.ndim == 2 and samples.shape[1] > 2 >= samples.shape[0]:
        raise BadAudio(
            f"audio is {samples.shape[0]} x {samples.shape[1]}: that is (channels, frames); "
            "send (frames, channels) as soundfile reads it, e.g. np.asarray(audio).T.tolist()"
        )
    if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[1] not in (1, 2)):
        raise BadAudio(
            f"audio of shape {samples.shape} is neither mono (a list of samples) nor "
            "(frames, channels) with 1 or 2 channels"
        )
    min_frames = math.ceil(min_seconds * rate)
    if len(samples) < min_frames:
        raise BadAudio(
            f"audio has {len(samples)} frames at {rate} Hz; the model needs at least "
            f"{min_frames} ({min_frames / rate * 1000:.0f} ms, one STFT window): send a longer clip"
        )
    mono = samples.ndim == 1
    try:
        check_samples(samples[:, None] if mono else samples, rate)
    except UnmixlabError as error:
        raise BadAudio(str(error)) from None
    mixture = torch.from_numpy(samples[None] if mono else samples.T.copy())
    return mixture, mono  # (nb_channels, nb_frames)


def to_frames_first(estimate: torch.Tensor, mono: bool) -> list:
    """``(nb_channels, nb_frames)`` as nested ``(nb_frames, nb_channels)`` lists, flat if mono."""
    return estimate[0].tolist() if mono else estimate.T.tolist()


def signature_for(targets: list[str]) -> ModelSignature:
    """Input ``audio`` and ``sample_rate``; one audio column per target.

    ``audio`` is typed ``any`` so that mono may come as a flat list; :func:`read_clip`
    checks its layout and answers a bad clip in one line.
    """
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "audio"), ColSpec(DataType.long, "sample_rate")]),
        outputs=Schema([ColSpec(AnyType(), target) for target in targets]),
    )


def input_example(sample_rate: int, nb_channels: int, nb_frames: int) -> pd.DataFrame:
    """A silent clip of ``nb_frames`` frames, saved with the model as its serving example."""
    silence = np.zeros((nb_frames, nb_channels), np.float32).tolist()
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
