"""Small synthetic `ReportData` for the report's tests: seeded probabilities, tiny PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deitkit.calibration import apply_temperature, logits_from_probs
from deitkit.metrics import compute_metrics
from deitkit.report import Calibration, ReportData, ThresholdTuning
from deitkit.tasks import Task
from deitkit.thresholds import f1_at

# HTML's special characters, and matplotlib's ($ starts mathtext, _ hides a legend entry).
TRICKY_LABEL = 'a<b&"c"'
MATPLOTLIB_LABELS = ("cost $x^{2$", "_hidden")
TRICKY_NAME = "<img src=x onerror=alert(1)>&'.png"


def write_images(folder: Path, count: int, *, side: int = 16, upscale: int = 1) -> list[Path]:
    """`count` random RGB PNGs of `side` x `side` pixels, each pixel `upscale` x `upscale`."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pixels = (rng.random((side, side, 3)) * 255).astype(np.uint8)
        picture = Image.fromarray(pixels)
        if upscale > 1:
            picture = picture.resize((side * upscale, side * upscale), Image.Resampling.NEAREST)
        path = folder / f"img{index:04d}.png"
        picture.save(path)
        paths.append(path)
    return paths


def history(epochs: int = 3) -> list[dict]:
    """A Trainer `log_history`: step losses, evaluations, and the closing summary entry."""
    out: list[dict] = []
    for epoch in range(1, epochs + 1):
        out.append({"loss": 2.0 / epoch, "learning_rate": 1e-4, "epoch": epoch - 0.5, "step": 5})
        out.append(
            {
                "eval_loss": 1.5 / epoch,
                "eval_accuracy": 0.5 + 0.1 * epoch,
                "eval_iou": 0.3,
                "eval_runtime": 0.1,
                "epoch": float(epoch),
                "step": 10 * epoch,
            }
        )
    out.append({"train_runtime": 3.0, "train_loss": 1.0, "epoch": float(epochs), "step": 30})
    return out


def multiclass(
    folder: Path,
    *,
    n: int = 40,
    classes: int = 4,
    side: int = 16,
    upscale: int = 1,
    calibrated: bool = False,
    with_history: bool = False,
    labels: tuple[str, ...] | None = None,
) -> ReportData:
    """A multiclass evaluation with about 75% accuracy; the first labels are `TRICKY_LABEL`
    and `MATPLOTLIB_LABELS`."""
    rng = np.random.default_rng(0)
    labels = labels or (
        TRICKY_LABEL,
        *MATPLOTLIB_LABELS,
        *(f"class {i}" for i in range(3, classes)),
    )
    labels = labels[:classes]
    y_true = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y_true] += 2.0
    probs = apply_temperature(Task.MULTICLASS, logits, 1.0)
    images = write_images(folder, n, side=side, upscale=upscale)
    names = [p.name for p in images]
    names[0] = TRICKY_NAME
    calibration = None
    if calibrated:
        before = apply_temperature(Task.MULTICLASS, logits, 0.5)  # overconfident before
        calibration = Calibration(temperature=2.0, probs_before=before)
    metrics = compute_metrics(Task.MULTICLASS, probs, y_true, labels=labels)
    if classes > 5:
        metrics["top_5_accuracy"] = 0.99
    return ReportData(
        title=f"tiny <model> & {TRICKY_LABEL}",
        task=Task.MULTICLASS,
        labels=labels,
        metrics=metrics,
        probs=probs,
        y_true=y_true,
        images=tuple(images),
        image_names=tuple(names),
        thresholds=(),
        calibration=calibration,
        history=history() if with_history else None,
        facts=(("data", "valid <split>"), ("images", str(n))),
    )


def multilabel(
    folder: Path,
    *,
    n: int = 30,
    classes: int = 4,
    tuned: bool = False,
    calibrated: bool = False,
) -> ReportData:
    """A multilabel evaluation; the first label is `TRICKY_LABEL`, the last never occurs."""
    rng = np.random.default_rng(2)
    labels = (TRICKY_LABEL, *(f"label_{i}" for i in range(1, classes)))
    y_true = (rng.random((n, classes)) < 0.4).astype(np.int64)
    y_true[:, -1] = 0  # no positives: no curve, named in the caption
    scores = np.clip(0.6 * y_true + rng.normal(0.2, 0.25, size=(n, classes)), 0.01, 0.99)
    thresholds = tuple(0.5 for _ in labels)
    tuning = None
    if tuned:
        after = tuple(0.35 + 0.05 * i for i in range(classes))
        tuning = ThresholdTuning(
            before=thresholds,
            after=after,
            f1_before=tuple(f1_at(scores[:, j], y_true[:, j], 0.5) for j in range(classes)),
            f1_after=tuple(f1_at(scores[:, j], y_true[:, j], after[j]) for j in range(classes)),
        )
        thresholds = after
    calibration = None
    if calibrated:
        before = apply_temperature(Task.MULTILABEL, logits_from_probs(Task.MULTILABEL, scores), 0.5)
        calibration = Calibration(temperature=2.0, probs_before=before)
    images = write_images(folder, n)
    names = [p.name for p in images]
    names[0] = TRICKY_NAME
    return ReportData(
        title="tiny multilabel",
        task=Task.MULTILABEL,
        labels=labels,
        metrics=compute_metrics(Task.MULTILABEL, scores, y_true, labels=labels),
        probs=scores,
        y_true=y_true,
        images=tuple(images),
        image_names=tuple(names),
        thresholds=thresholds,
        tuning=tuning,
        calibration=calibration,
        facts=(("engine", "onnx"),),
    )
