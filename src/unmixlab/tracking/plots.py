"""Figures logged with a run."""

import threading
from pathlib import Path

from unmixlab.trainer import History

# matplotlib is not thread-safe (its mathtext parser fails under concurrent tick layout)
_MATPLOTLIB = threading.Lock()


def plot_loss_curves(history: History, path: Path, title: str) -> Path:
    """Draw train and validation loss per epoch (log scale), marking the best epoch, as PNG.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, no GUI backend

    epochs = range(1, len(history.train_loss) + 1)
    with _MATPLOTLIB:
        figure = Figure(figsize=(6, 4), dpi=100)
        axes = figure.add_subplot()
        axes.plot(epochs, history.train_loss, marker="o", label="train")
        axes.plot(epochs, history.valid_loss, marker="o", label="valid")
        if history.best_epoch:
            axes.axvline(history.best_epoch, color="grey", linestyle=":", label="best epoch")
        axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.set_ylabel("MSE loss")
        axes.set_title(title)
        axes.legend()
        figure.tight_layout()
        figure.savefig(path, format="png")
    return path
