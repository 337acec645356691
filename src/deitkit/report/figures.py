"""The report's pictures, drawn on matplotlib's Agg canvas and returned as PNG bytes."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

from deitkit.calibration import Reliability
from deitkit.plots import multilabel_confusion_figure
from deitkit.report.curves import CurveChoice
from deitkit.report.history import Series

# Low enough that a figure is tens of kilobytes, high enough that 8-point text stays legible.
DPI = 90
# As in deitkit.plots: beyond these, cell numbers and tick labels overlap into noise; the
# colour pattern still shows and the tables hold the numbers.
MAX_ANNOTATED = 30
MAX_TICKS = 60
MAX_GRID = 64  # per-label 2x2 matrices drawn for multilabel models
# Longer names are cut in pictures (the HTML tables show them whole).
_MAX_TEXT = 32


def png(fig: Figure) -> bytes:
    """`fig` as PNG bytes, reduced to a 256-colour palette.

    Plots are flat colours and anti-aliased edges: median-cut keeps white white and the mean
    error under one level in 255, and the file is a third of the full-colour one (measured on
    a 10-class confusion matrix: 108 kB -> 36 kB), which keeps the whole report small.
    """
    raw = BytesIO()
    # No "Software" text chunk: it would carry matplotlib's web address into the report.
    fig.savefig(raw, format="png", dpi=DPI, metadata={"Software": None})
    raw.seek(0)
    with Image.open(raw) as image:
        paletted = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out = BytesIO()
    paletted.save(out, format="PNG", optimize=True)
    return out.getvalue()


def text(name: str) -> str:
    """A user string made safe for matplotlib: no mathtext, not hidden from legends, short."""
    name = name if len(name) <= _MAX_TEXT else name[: _MAX_TEXT - 1] + "…"
    # `$...$` would be parsed as mathtext (and can fail to parse); a leading "_" hides a legend
    # entry.
    name = name.replace("$", r"\$")
    return " " + name if name.startswith("_") else name


def confusion_matrix(matrix: np.ndarray, labels: Sequence[str]) -> bytes:
    """Counts and row shares side by side, rows true and columns predicted."""
    n = len(labels)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    # Cells grow with the label count up to a cap; without tick labels a smaller panel will do.
    side = min(3.0 + 0.35 * n, 10.0 if n <= MAX_TICKS else 6.0)
    fig = Figure(figsize=(2 * side + 2.0, side + 0.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    fontsize = 9 if n <= 12 else 7
    panels = (
        (left, matrix, "counts", "count", lambda v: str(int(v))),
        (right, share, "share of each true class (rows sum to 1)", "share", lambda v: f"{v:.2f}"),
    )
    for ax, values, title, bar_label, fmt in panels:
        vmax = max(float(values.max()), 1e-9)
        image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
        fig.colorbar(image, ax=ax, shrink=0.8, label=bar_label)
        if n <= MAX_ANNOTATED:
            for (row, col), value in np.ndenumerate(values):
                colour = "white" if value > 0.5 * vmax else "black"
                shown = fmt(value) if matrix[row, col] else "0"
                ax.text(col, row, shown, ha="center", va="center", color=colour, fontsize=fontsize)
        _label_axes(ax, labels)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(title)
    return png(fig)


def multilabel_confusion(matrices: np.ndarray, labels: Sequence[str]) -> bytes:
    """One 2x2 matrix `[[tn, fp], [fn, tp]]` per label, in a grid (the first `MAX_GRID`)."""
    fig = multilabel_confusion_figure(matrices, labels, cell=1.9, fontsize=8, name=text)
    fig.suptitle("rows: true, columns: predicted; colour: share of the row", fontsize=9)
    return png(fig)


def curves(
    choice: CurveChoice,
    true_bin: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    thresholds: Sequence[float] | None = None,
) -> bytes:
    """ROC (left) and precision-recall (right) curves, one-vs-rest, of the chosen classes.

    With `thresholds` (multilabel), each label's decision threshold is a point on its PR curve.
    """
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    for index in choice.drawn:
        name = text(labels[index])
        truth, scores = true_bin[:, index], probs[:, index]
        roc = RocCurveDisplay.from_predictions(truth, scores, ax=roc_ax, name=name)
        pr = PrecisionRecallDisplay.from_predictions(truth, scores, ax=pr_ax, name=name)
        # Same colour for a class in both panels, so one legend reads for both.
        pr.line_.set_color(roc.line_.get_color())
        if thresholds is not None:
            predicted = scores >= thresholds[index]
            hits = float(np.sum(predicted & (truth == 1)))
            precision = hits / predicted.sum() if predicted.any() else 1.0
            pr_ax.plot(
                hits / truth.sum(),
                precision,
                "o",
                color=roc.line_.get_color(),
                markeredgecolor="black",
                markersize=6,
                zorder=3,
            )
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    roc_ax.set_title("ROC, one-vs-rest")
    title = "precision-recall"
    if thresholds is not None:
        title += " (dots: each label's threshold)"
    pr_ax.set_title(title)
    # scikit-learn's axis labels name the positive label ("1"): one-vs-rest reads better plain.
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    for ax, where in ((roc_ax, "lower right"), (pr_ax, "lower left")):
        ax.legend(loc=where, fontsize=7)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.grid(alpha=0.3)
    return png(fig)


def reliability(panels: Sequence[tuple[str, Reliability]], *, multilabel: bool) -> bytes:
    """Reliability diagrams side by side: observed accuracy per confidence bin against the
    diagonal of perfect calibration, with the bin counts underneath."""
    fig = Figure(figsize=(4.6 * len(panels), 5.2), layout="constrained")
    grid = fig.add_gridspec(2, len(panels), height_ratios=(3, 1))
    x_label = "predicted probability" if multilabel else "confidence (top probability)"
    y_label = "share with the label" if multilabel else "accuracy"
    for column, (title, bins) in enumerate(panels):
        top = fig.add_subplot(grid[0, column])
        bottom = fig.add_subplot(grid[1, column], sharex=top)
        width = np.diff(bins.edges)
        lefts = bins.edges[:-1]
        filled = bins.count > 0
        top.bar(
            lefts[filled],
            bins.accuracy[filled],
            width[filled],
            align="edge",
            color="tab:blue",
            edgecolor="white",
            label="observed",
        )
        top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        top.set_xlim(0.0, 1.0)
        top.set_ylim(0.0, 1.0)
        top.set_ylabel(y_label)
        top.set_title(f"{title}: ECE {bins.ece:.4f}", fontsize=10)
        top.legend(loc="upper left", fontsize=7)
        top.grid(alpha=0.3)
        bottom.bar(lefts, bins.count, width, align="edge", color="tab:grey", edgecolor="white")
        bottom.set_xlabel(x_label)
        bottom.set_ylabel("count")
        if bins.count.max() > 50 * max(bins.count[filled].min(), 1):
            bottom.set_yscale("log")  # a few crowded bins would flatten all others to nothing
    return png(fig)


def training(losses: Sequence[Series], metric: Series | None) -> bytes:
    """Losses (left) and the primary evaluation metric (right) per epoch (or step)."""
    panels = [("loss", list(losses))] if losses else []
    if metric is not None:
        panels.append((metric.name, [metric]))
    fig = Figure(figsize=(5.0 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).flat
    for ax, (title, drawn) in zip(axes, panels, strict=True):
        for series in drawn:
            # Markers while they can be told apart; a long run's step losses are a line.
            marker = "o" if len(series.x) <= 40 else ""
            ax.plot(series.x, series.values, marker=marker, markersize=3, label=text(series.name))
        ax.set_xlabel(drawn[0].x_name)
        ax.set_title(text(title))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return png(fig)


def _label_axes(ax, labels: Sequence[str]) -> None:
    n = len(labels)
    if n > MAX_TICKS:
        ax.set_xticks([])
        ax.set_yticks([])
        return
    names = [text(label) for label in labels]
    ax.set_xticks(range(n), names, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_yticks(range(n), names)
