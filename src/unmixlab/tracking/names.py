"""Run names and notes that say what differs between runs, and what came out of each.

A training run is named ``quickstart · vocals · h512 b16 · seed 42`` (preset, target, model
and batch size, seed), with what sets it apart from its preset first (``epochs 8 ·
quickstart · vocals · ...``: MLflow's runs table cuts names at about 20 characters); a trial
``trial 7 · h256 b8 spt16 bi lr 3.2e-04`` (its suggested values). A run's note (MLflow's
description, tag ``mlflow.note.content``: shown on the run page and in the runs table's
Description column) gathers its key results, one line each.
"""

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from unmixlab.tracking.schema import NOTE_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

SEPARATOR = " · "
# settings a run name leaves out: where a run writes and what it runs on, not what it learns
UNNAMED = frozenset({"output", "cache_dir", "device", "nb_workers"})
# setting -> prefix of its value in a run name
SHORT = {
    "hidden_size": "h",
    "batch_size": "b",
    "samples_per_track": "spt",
    "nb_layers": "layers ",
    "seq_dur": "dur ",
    "lr": "lr ",
    "weight_decay": "wd ",
    "nfft": "nfft ",
}


def settings_label(values: Mapping[str, object]) -> str:
    """Settings as a run name writes them: ``h256 lr 3.0e-04`` for hidden_size 256, lr 3e-4."""
    parts = []
    for key, value in values.items():
        if isinstance(value, str) and "/" in value:  # a path: its last part
            parts.append(f"{SHORT.get(key, key + ' ')}{value.rstrip('/').rsplit('/', 1)[-1]}")
        elif key == "unidirectional":
            parts.append("uni" if value else "bi")
        elif isinstance(value, float):
            number = f"{value:.1e}" if abs(value) < 0.01 else f"{value:.3g}"
            parts.append(f"{SHORT.get(key, key + ' ')}{number}")
        else:
            parts.append(f"{SHORT.get(key, key + ' ')}{value}")
    return " ".join(parts)


def changed_settings(
    base: Mapping[str, object], settings: Mapping[str, object]
) -> dict[str, object]:
    """The flat ``settings`` that differ from ``base`` (a preset's), but for :data:`UNNAMED`."""
    return {k: v for k, v in settings.items() if k not in UNNAMED and base.get(k) != v}


def training_run_name(
    settings: Mapping[str, object],
    preset: str | None = None,
    changed: Mapping[str, object] | None = None,
    first: str = "",
) -> str:
    """``epochs 8 · quickstart · vocals · h512 b16 · seed 42`` (``uni`` for a causal model).

    Args:
        settings: the training's flat settings (``target``, ``hidden_size``, ``batch_size``,
            ``unidirectional``, ``seed``), as its params hold them.
        preset: the preset the training came from.
        changed: settings that differ from the preset's (:func:`changed_settings`), named
            first; the fixed parts then leave them out.
        first: a name before everything (a study's configuration, a model folder).
    """
    changed = dict(changed or {})
    size = {k: settings[k] for k in ("hidden_size", "batch_size") if k not in changed}
    causal = settings["unidirectional"] and "unidirectional" not in changed
    label = " ".join(part for part in (settings_label(size), "uni" if causal else "") if part)
    seed = "" if "seed" in changed else f"seed {settings['seed']}"
    parts = [first, settings_label(changed), preset, settings["target"], label, seed]
    return SEPARATOR.join(str(part) for part in parts if part)


def trial_run_name(number: int, params: Mapping[str, object]) -> str:
    """``trial 7 · h256 b8``: the trial's number and its suggested values."""
    return SEPARATOR.join(part for part in (f"trial {number}", settings_label(params)) if part)


def with_lines(note: str, lines: Mapping[str, str]) -> str:
    """``note`` with ``key: value`` lines set: a key already there has its line replaced."""
    kept = [line for line in note.splitlines() if line.split(":", 1)[0] not in lines]
    return "\n".join([*kept, *(f"{key}: {value}" for key, value in lines.items())])


def add_to_note(client: "MlflowClient", run_id: str, lines: Mapping[str, str]) -> None:
    """Set ``key: value`` lines of a run's note (a resumed or re-scored run keeps one each)."""
    note = client.get_run(run_id).data.tags.get(NOTE_TAG, "")
    client.set_tag(run_id, NOTE_TAG, with_lines(note, lines))


def training_note(best_loss: float, best_epoch: int, epochs: int, seconds: float) -> dict[str, str]:
    """The note lines of a finished training."""
    loss = f"{best_loss:.4g}" if math.isfinite(best_loss) else "none"
    return {
        "best valid loss": f"{loss} (epoch {best_epoch} of {epochs})",
        "training": f"{seconds:.0f} s",
    }


def describe_experiment(
    client: "MlflowClient", experiment_id: str, preset: str, description: str
) -> None:
    """List ``preset: description`` in the experiment's description (one line per preset).

    Presets often share one experiment, so each adds its own line; other text stays.
    """
    if not description:
        return
    note = client.get_experiment(experiment_id).tags.get(NOTE_TAG, "")
    client.set_experiment_tag(
        experiment_id, NOTE_TAG, with_lines(note, {f"preset {preset}": description})
    )
