"""Model folders in the reference Open-Unmix layout.

``DIR/<target>.pth`` (state_dict), ``DIR/<target>.json`` (``args`` and histories) and
``DIR/separator.json`` (targets, sample rate, nfft, nhop, nb_channels). The reference
``openunmix.utils.load_separator`` reads the same files.
"""

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from unmixlab.errors import UnmixlabError
from unmixlab.files import LATEST, atomic_path, write_text
from unmixlab.model import ModelConfig, OpenUnmix


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    write_text(path, json.dumps(data, indent=2, default=str))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object.

    Raises:
        UnmixlabError: the file is not valid JSON.
    """
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UnmixlabError(
            f"invalid JSON ({error})", "Restore or rewrite this file", path
        ) from error


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: Path, fix: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)``: tensors and plain values only, never other objects.

    Raises:
        UnmixlabError: the file is empty, cut off, not a torch file, or holds other objects
            (tampered with); the message names the file and says ``fix``.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch fails through many types on a bad file
        if path.stat().st_size == 0:
            problem = "is empty"
        elif isinstance(error, pickle.UnpicklingError):  # random bytes, or foreign objects
            problem = "cannot load the weights: not a file of tensors, damaged or tampered with"
        else:
            reason = next(iter(str(error).splitlines()), "") or type(error).__name__
            problem = f"cannot load the weights: damaged or cut off ({reason[:120]})"
        raise UnmixlabError(problem, fix, path) from error


def write_separator_json(
    folder: Path,
    sample_rate: int,
    nfft: int,
    nhop: int,
    nb_channels: int,
    stage: Path | None = None,
) -> None:
    """(Re)write ``separator.json`` listing every target model present in ``folder``.

    With ``stage`` (a :func:`unmixlab.files.staged_files` folder for ``folder``), the file is
    written there, and the models staged there count as present.
    """
    folders = [Path(folder), *([Path(stage)] if stage is not None else [])]
    targets = sorted({p.stem for where in folders for p in where.glob("*.pth")})
    write_json(
        folders[-1] / "separator.json",
        {
            "targets": targets,
            "sample_rate": sample_rate,
            "nfft": nfft,
            "nhop": nhop,
            "nb_channels": nb_channels,
        },
    )


# what separator.json must hold, as the reference ``openunmix.utils.load_separator`` reads it
# (the reference's training writes its sample rate as a float)
SEPARATOR_KEYS = {
    "targets": list,
    "sample_rate": (int, float),
    "nfft": int,
    "nhop": int,
    "nb_channels": int,
}


def model_folder(path: Path) -> Path:
    """The model folder that ``path`` names.

    ``path`` is a model folder (it holds ``separator.json``), a flow run's folder (its
    ``model/``) or a flow's output folder (its ``latest/model/``, e.g. ``runs/quickstart``).
    Anything else comes back unchanged, for :func:`read_separator_json` to refuse.
    """
    path = Path(path)
    for folder in (path, path / "model", path / LATEST / "model"):
        if (folder / "separator.json").is_file():
            return folder
    return path


def read_separator_json(folder: Path) -> dict[str, Any]:
    """The separator settings of a model folder."""
    folder = Path(folder)
    path = folder / "separator.json"
    if not folder.is_dir():
        raise UnmixlabError(
            "model folder not found", "Pass --model DIR holding a trained model", folder
        )
    if not path.is_file():
        raise UnmixlabError(
            "no separator.json in the model folder",
            "Pass the --output folder of `unmixlab train`, or an Open-Unmix model folder",
            folder,
        )
    settings = read_json(path)
    wrong = [
        key
        for key, kind in SEPARATOR_KEYS.items()
        if not isinstance(settings, dict) or not isinstance(settings.get(key), kind)
    ]
    if wrong:
        raise UnmixlabError(
            f"separator.json lacks or mistypes {', '.join(wrong)}",
            "Rewrite it as `unmixlab train` does: targets (a list), sample_rate, nfft, nhop "
            "and nb_channels (numbers)",
            path,
        )
    out_of_range = [
        f"{key} {settings[key]} ({rule})"
        for key, rule, fits in (
            ("sample_rate", "must be positive", lambda v: v > 0),
            ("nfft", "must be at least 2", lambda v: v >= 2),
            ("nhop", "must be between 1 and nfft", lambda v: 1 <= v <= settings["nfft"]),
            ("nb_channels", "must be 1 or 2", lambda v: v in (1, 2)),
        )
        if not fits(settings[key])
    ]
    if out_of_range:
        raise UnmixlabError(
            f"separator.json holds values out of range: {'; '.join(out_of_range)}",
            "Rewrite it with the settings the models were trained with",
            path,
        )
    return settings


def load_target_model(folder: Path, target: str) -> OpenUnmix:
    """Load ``<target>.pth`` and ``<target>.json`` as a frozen model.

    Raises:
        UnmixlabError: files missing, or weights of another architecture.
    """
    folder = Path(folder)
    weights, meta_path = folder / f"{target}.pth", folder / f"{target}.json"
    for path in (weights, meta_path):
        if not path.is_file():
            raise UnmixlabError(
                f"no model for target '{target}'",
                "Train it first, or pick --targets among the .pth files present",
                path,
            )
    meta = read_json(meta_path)
    state = load_torch(weights, "Retrain the model or copy the file again")
    if not isinstance(state, dict):
        raise UnmixlabError(
            "is not a state_dict", "Retrain the model or copy the file again", weights
        )
    config = model_config_from(meta, state, meta_path)
    model = OpenUnmix(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise UnmixlabError(
            f"weights do not fit the architecture in {meta_path.name} "
            f"({str(error).splitlines()[0]})",
            "The folder holds a model of another architecture; retrain or fix its JSON",
            weights,
        ) from error
    model.freeze()
    return model


def model_config_from(
    meta: dict[str, Any], state: dict[str, torch.Tensor], path: Path
) -> ModelConfig:
    """Rebuild the architecture from ``<target>.json`` (ours or the reference's)."""
    args = meta.get("args") or {}
    try:
        if "model" in meta:
            return ModelConfig(**meta["model"])
        if "input_mean" in state:
            return ModelConfig(
                nb_bins=args["nfft"] // 2 + 1,
                nb_channels=args["nb_channels"],
                hidden_size=args["hidden_size"],
                unidirectional=bool(args.get("unidirectional", False)),
                max_bin=state["input_mean"].shape[0],
            )
    except (KeyError, TypeError, ValidationError) as error:
        raise UnmixlabError(
            f"invalid model description ({str(error).splitlines()[0]})",
            "Expected a JSON with 'model', or 'args' (nfft, nb_channels, hidden_size)",
            path,
        ) from error
    raise UnmixlabError(
        "not an Open-Unmix model description",
        "Expected a JSON with 'model', or 'args' (nfft, nb_channels, hidden_size)",
        path,
    )
