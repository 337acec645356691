"""Evaluation pictures (confusion matrices, per-class scores) drawn with matplotlib's Agg canvas."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

# Beyond these, cell numbers and tick labels overlap into noise; the picture still shows the
# colour pattern, and the JSON/CSV artifacts hold every number.
_MAX_ANNOTATED = 30
_MAX_TICKS = 60
_MAX_GRID = 64  # per-label 2x2 matrices drawn for multilabel models
_MAX_BARS = 50  # labels in the per-class bar chart (the lowest-f1 ones when there are more)
_DPI = 110


def plot_confusion_matrix(
    matrix: np.ndarray, labels: Sequence[str], path: Path, *, title: str
) -> Path:
    """A (C, C) count matrix, rows true and columns predicted; colour is the row share.

    Colouring by the share of each true class keeps rare classes as visible as common ones.
    """
    n = len(labels)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    # Cells grow with the label count up to a cap; without tick labels a smaller picture will do.
    side = min(4.0 + 0.45 * n, 24.0 if n <= _MAX_TICKS else 12.0)
    fig = Figure(figsize=(side + 1.5, side), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if n <= _MAX_ANNOTATED:
        for (row, col), count in np.ndenumerate(matrix):
            colour = "white" if share[row, col] > 0.5 else "black"
            ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=9)
    _label_axes(ax, labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    fig.savefig(path)
    return path


def plot_multilabel_confusion(
    matrices: np.ndarray, labels: Sequence[str], path: Path, *, title: str
) -> Path:
    """One 2x2 matrix `[[tn, fp], [fn, tp]]` per label, in a grid (the first 64 labels)."""
    fig = multilabel_confusion_figure(matrices, labels, cell=2.3, fontsize=9)
    fig.set_dpi(_DPI)
    shown = min(len(labels), _MAX_GRID)
    more = f" (first {shown} of {len(labels)} labels)" if shown < len(labels) else ""
    fig.suptitle(f"{title}{more}\nrows: true, columns: predicted")
    fig.savefig(path)
    return path


def multilabel_confusion_figure(
    matrices: np.ndarray,
    labels: Sequence[str],
    *,
    cell: float,
    fontsize: int,
    name: Callable[[str], str] = str,
) -> Figure:
    """The grid of per-label 2x2 matrices (the first 64 labels), `cell` inches a matrix, label
    titles through `name`; the caller adds the title."""
    shown = min(len(labels), _MAX_GRID)
    cols = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    fig = Figure(figsize=(cell * cols, cell * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= shown:
            ax.set_axis_off()
            continue
        counts = matrices[index]
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros((2, 2)), where=totals > 0)
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for (row, col), count in np.ndenumerate(counts):
            colour = "white" if share[row, col] > 0.5 else "black"
            ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=fontsize)
        ax.set_xticks([0, 1], ["no", "yes"], fontsize=fontsize - 1)
        ax.set_yticks([0, 1], ["no", "yes"], fontsize=fontsize - 1)
        ax.set_title(name(labels[index]), fontsize=fontsize)
    return fig


def plot_per_class(rows: Sequence[dict], path: Path, *, title: str) -> Path:
    """Precision, recall and f1 per label as grouped horizontal bars, support in the tick."""
    if len(rows) > _MAX_BARS:
        rows = sorted(rows, key=lambda r: (r["f1"], r["label"]))[:_MAX_BARS]
        title = f"{title} ({_MAX_BARS} labels with the lowest f1)"
    n = len(rows)
    fig = Figure(figsize=(8.0, 1.2 + 0.45 * n), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(n)
    height = 0.27
    for offset, (key, colour) in zip(
        (-height, 0.0, height),
        (("precision", "tab:blue"), ("recall", "tab:orange"), ("f1", "tab:green")),
        strict=True,
    ):
        ax.barh(y + offset, [r[key] for r in rows], height, label=key, color=colour)
    ax.set_yticks(y, [f"{r['label']} ({r['support']})" for r in rows])
    ax.margins(y=0.01)
    ax.invert_yaxis()  # first label on top, like the tables
    ax.set_xlim(0.0, 1.02)
    ax.set_xlabel("score (label, support in brackets)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)  # beside the axes, never over a bar
    ax.set_title(title)
    fig.savefig(path)
    return path


def _label_axes(ax, labels: Sequence[str]) -> None:
    n = len(labels)
    if n > _MAX_TICKS:
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.set_xticks(range(n), labels, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_yticks(range(n), labels)
