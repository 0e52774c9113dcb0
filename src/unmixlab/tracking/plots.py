"""Figures logged with a run."""

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib import ticker

from unmixlab.trainer import History

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib is not thread-safe (its mathtext parser fails under concurrent tick layout)
_MATPLOTLIB = threading.Lock()


class PlainLogFormatter(ticker.LogFormatter):
    """Labels a log axis with plain numbers (``0.006``, ``2``), never ``6×10^-3``.

    Which ticks get a label is :class:`matplotlib.ticker.LogFormatter`'s choice (minor ticks
    too when the axis spans few decades).
    """

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def plot_loss_curves(history: History, path: Path, title: str) -> Path:
    """Save :func:`loss_figure` as PNG at ``path``; return ``path``."""
    with _MATPLOTLIB:
        loss_figure(history, title).savefig(path, format="png")
    return path


def loss_figure(history: History, title: str) -> "Figure":
    """The losses and the learning rate per epoch, with the best epoch marked.

    Top panel: train and validation loss (log scale), the best epoch as a dotted line and a
    dot on the validation curve. Bottom panel: the learning rate after each epoch (log
    scale), which shows when ``ReduceLROnPlateau`` cut it. Call under ``_MATPLOTLIB``.

    Args:
        history: the per-epoch curves.
        title: the figure's title (the run's name).
    """
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, no GUI backend

    epochs = range(1, len(history.train_loss) + 1)
    figure = Figure(figsize=(7, 5.5), dpi=100)
    loss, lr = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    loss.plot(epochs, history.train_loss, marker=".", label="train")
    loss.plot(epochs, history.valid_loss, marker=".", label="valid")
    if history.best_epoch:
        best = history.valid_loss[history.best_epoch - 1]
        loss.axvline(history.best_epoch, color="grey", linestyle=":")
        loss.plot(
            [history.best_epoch],
            [best],
            "o",
            color="black",
            label=f"best valid {best:.4g} (epoch {history.best_epoch})",
        )
    lr.plot(epochs, history.lr, marker=".", drawstyle="steps-post", color="tab:green")
    for axes, label in ((loss, "MSE loss"), (lr, "learning rate")):
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        axes.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))
        axes.set_ylabel(label)
        axes.grid(True, which="major", alpha=0.3)
    lr.set_xlabel("epoch")
    lr.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    loss.set_title(title)
    loss.legend()
    figure.tight_layout()
    return figure
