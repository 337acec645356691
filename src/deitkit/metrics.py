"""Classification metrics under Azure ML's names, computed with scikit-learn, for both tasks."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from deitkit.errors import ConfigError, DataError
from deitkit.tasks import Task, parse_task

_AVERAGES = ("macro", "micro", "weighted")
_SHARED_NAMES = (
    "accuracy",
    "weighted_accuracy",
    "balanced_accuracy",
    "norm_macro_recall",
    "log_loss",
    "matthews_correlation",
    *(f"{metric}_{avg}" for metric in ("f1_score", "precision_score") for avg in _AVERAGES),
    *(f"{metric}_{avg}" for metric in ("recall_score", "AUC") for avg in _AVERAGES),
    *(f"average_precision_score_{avg}" for avg in _AVERAGES),
)

METRIC_NAMES: dict[Task, tuple[str, ...]] = {
    Task.MULTICLASS: _SHARED_NAMES,
    Task.MULTILABEL: (*_SHARED_NAMES, "iou", "iou_micro", "iou_macro", "iou_weighted"),
}
# One decision threshold for every label, or one per label in label order (tuned thresholds).
Threshold = float | Sequence[float] | np.ndarray

PRIMARY_METRIC: dict[Task, str] = {task: task.primary_metric for task in Task}

# Softmax rows computed in float32 drift from 1 by ~1e-7; anything far off is not probabilities.
_ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class _Comparison:
    """Truth beside prediction, validated, as scikit-learn wants them: ids and (N, C) indicators."""

    task: Task
    probs: np.ndarray  # (N, C) float64
    y_true: np.ndarray  # multiclass (N,) ids; multilabel (N, C) indicator
    y_pred: np.ndarray  # same form as y_true
    true_bin: np.ndarray  # (N, C) int8 indicator
    pred_bin: np.ndarray  # (N, C) int8 indicator


def compute_metrics(
    task: Task | str,
    probs: np.ndarray,
    y_true: np.ndarray,
    *,
    labels: Sequence[str],
    threshold: Threshold = 0.5,
) -> dict[str, float]:
    """Every scalar metric in `METRIC_NAMES[task]`, as plain Python floats.

    Predictions are the argmax (multiclass) or `probs >= threshold` (multilabel; `threshold`
    is ignored for multiclass). Definitions follow Azure ML's scorer (azureml-metrics), with
    these decisions where it is undefined, inconsistent or fails:

    - precision/recall/f1/iou averages cover the classes that occur in `y_true` or in the
      predictions; a class with neither has no evidence either way and is left out (Azure does
      this for multiclass, but scores such a label 0 in multilabel). 0/0 inside a class -> 0.
    - AUC_macro/weighted average over classes with both positives and negatives, and
      average_precision_score_macro/weighted over classes with positives (Azure drops absent
      classes the same way); NaN when no class qualifies (e.g. one class in `y_true`).
      The micro averages pool every (example, class) pair; NaN only if that pool is degenerate.
    - norm_macro_recall: (mean recall over classes present in `y_true` - R) / (1 - R), floored
      at 0, with R = 1/K for K present classes (NaN if K < 2); multilabel uses R = 0.5, the
      recall of a coin flip on each label.
    - multilabel accuracy is subset accuracy (all labels exact), as in Azure; iou is the
      example-averaged Jaccard index, where an example with no true and no predicted labels
      scores 1 (a correct empty answer; Azure's scorer gives 0 there).
    - multilabel log_loss is the mean binary cross-entropy over every (example, label) pair
      (the training loss); multilabel matthews_correlation and weighted_accuracy pool every
      (example, label) pair into one binary problem, as Azure's formulas do on flat arrays.
    - weighted_accuracy weights each example by the frequency of its true class.
    - matthews_correlation is 0 where its denominator vanishes (sklearn's and Azure's rule).

    Args:
        task: The task, or its Azure ML name.
        probs: (N, C) softmax probabilities (multiclass) or sigmoid probabilities (multilabel).
        y_true: (N,) integer class ids (multiclass) or an (N, C) 0/1 indicator (multilabel).
        labels: The C class names, in column order.
        threshold: Probability at or above which a multilabel label is predicted: one for
            every label, or one per label in label order.

    Returns:
        Metric name -> value, keys exactly `METRIC_NAMES[task]`.

    Raises:
        DataError: The arrays have the wrong shape, contain invalid values or are empty.
        ConfigError: Unknown task, or `threshold` outside [0, 1].
    """
    compared = _prepare(task, probs, y_true, labels, threshold)
    with warnings.catch_warnings():
        # zero_division is set explicitly; the remaining 0/0 cases are documented above.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        # matthews_corrcoef's internal confusion matrix when one class fills truth and guess.
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        out = {
            "accuracy": skm.accuracy_score(compared.y_true, compared.y_pred),
            "weighted_accuracy": _weighted_accuracy(compared),
            "norm_macro_recall": _norm_macro_recall(compared),
            "log_loss": _log_loss(compared),
            "matthews_correlation": _matthews(compared),
        }
        present = _present_classes(compared)
        for avg in _AVERAGES:
            precision, recall, f1, _ = skm.precision_recall_fscore_support(
                compared.y_true, compared.y_pred, labels=present, average=avg, zero_division=0
            )
            out[f"precision_score_{avg}"] = precision
            out[f"recall_score_{avg}"] = recall
            out[f"f1_score_{avg}"] = f1
        # Azure defines balanced_accuracy as macro recall over the same classes.
        out["balanced_accuracy"] = out["recall_score_macro"]
        out.update(_ranking_metrics(compared, "AUC", skm.roc_auc_score, need_negatives=True))
        out.update(
            _ranking_metrics(
                compared,
                "average_precision_score",
                skm.average_precision_score,
                need_negatives=False,
            )
        )
        if compared.task.is_multilabel:
            out["iou"] = skm.jaccard_score(
                compared.y_true, compared.y_pred, average="samples", zero_division=1.0
            )
            for avg in _AVERAGES:
                out[f"iou_{avg}"] = skm.jaccard_score(
                    compared.y_true, compared.y_pred, labels=present, average=avg, zero_division=1.0
                )
    return {name: float(out[name]) for name in METRIC_NAMES[compared.task]}


def per_class_table(
    task: Task | str,
    probs: np.ndarray,
    y_true: np.ndarray,
    *,
    labels: Sequence[str],
    threshold: Threshold = 0.5,
) -> list[dict]:
    """One row per class, in label order: label, support, predicted, precision, recall, f1.

    `support` counts true examples and `predicted` predicted ones (ints); the scores are floats
    at the same decision rule as `compute_metrics`, with 0/0 reported as 0 (as Azure does).
    """
    compared = _prepare(task, probs, y_true, labels, threshold)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        compared.y_true,
        compared.y_pred,
        labels=np.arange(len(labels)),
        average=None,
        zero_division=0,
    )
    predicted = compared.pred_bin.sum(axis=0)
    return [
        {
            "label": str(label),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
        }
        for i, label in enumerate(labels)
    ]


def confusion(
    task: Task | str,
    probs: np.ndarray,
    y_true: np.ndarray,
    *,
    labels: Sequence[str],
    threshold: Threshold = 0.5,
) -> np.ndarray:
    """Outcome counts at the same decision rule as `compute_metrics`.

    Multiclass: (C, C), rows the true and columns the predicted class. Multilabel: (C, 2, 2),
    per label `[[tn, fp], [fn, tp]]` (scikit-learn's layout).
    """
    compared = _prepare(task, probs, y_true, labels, threshold)
    if compared.task.is_multilabel:
        return skm.multilabel_confusion_matrix(compared.y_true, compared.y_pred)
    return skm.confusion_matrix(compared.y_true, compared.y_pred, labels=np.arange(len(labels)))


def _prepare(
    task: Task | str,
    probs: np.ndarray,
    y_true: np.ndarray,
    labels: Sequence[str],
    threshold: Threshold,
) -> _Comparison:
    """Validate the inputs and derive predictions; errors name the example index."""
    task = parse_task(task)
    n_classes = len(labels)
    threshold = _checked_threshold(threshold, n_classes)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_classes or probs.shape[0] == 0:
        raise DataError(
            f"probs has shape {probs.shape}; expected (N, {n_classes}) with N >= 1, "
            f"one column per label"
        )
    bad = ~np.isfinite(probs).all(axis=1) | (probs < -1e-6).any(axis=1) | (probs > 1 + 1e-6).any(1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"probs of example {i} are not probabilities in [0, 1]: {probs[i]}")
    probs = np.clip(probs, 0.0, 1.0)
    y = np.asarray(y_true)

    if task.is_multilabel:
        if y.shape != probs.shape:
            raise DataError(f"y_true has shape {y.shape}; {task} expects {probs.shape} (0/1)")
        bad = ~np.isin(y, (0, 1)).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"y_true of example {i} is not a 0/1 indicator: {y[i]}")
        true_bin = y.astype(np.int8)
        pred_bin = (probs >= threshold).astype(np.int8)
        return _Comparison(task, probs, true_bin, pred_bin, true_bin, pred_bin)

    if y.shape != (probs.shape[0],) or y.dtype.kind not in "iu":
        raise DataError(
            f"y_true has shape {y.shape} and dtype {y.dtype}; {task} expects "
            f"({probs.shape[0]},) integer class ids"
        )
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"class id {y[i]} of example {i} is outside 0..{n_classes - 1}")
    sums = probs.sum(axis=1)
    bad = np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"probs of example {i} sum to {sums[i]:.6g}; {task} expects softmax probabilities"
        )
    pred = probs.argmax(axis=1)
    eye = np.eye(n_classes, dtype=np.int8)
    return _Comparison(task, probs, y.astype(np.int64), pred, eye[y], eye[pred])


def _checked_threshold(threshold: Threshold, n_classes: int) -> np.ndarray:
    """One threshold for every label, or one per label (tuned), as an array in [0, 1]."""
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim > 1 or (values.ndim == 1 and values.shape != (n_classes,)):
        raise ConfigError(
            f"thresholds have shape {values.shape}; expected one number or one per label "
            f"({n_classes})"
        )
    if not (np.isfinite(values) & (values >= 0.0) & (values <= 1.0)).all():
        raise ConfigError(f"threshold {threshold!r} is outside [0, 1]")
    return values


def top_k_accuracy(probs: np.ndarray, y_true: np.ndarray, *, k: int = 5) -> float:
    """Share of images whose true class is among the `k` most probable (multiclass)."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(skm.top_k_accuracy_score(y_true, probs, k=k, labels=np.arange(probs.shape[1])))


def _present_classes(compared: _Comparison) -> np.ndarray | None:
    """Classes seen in the truth or the predictions (None: none at all, let sklearn decide)."""
    present = np.flatnonzero(compared.true_bin.any(axis=0) | compared.pred_bin.any(axis=0))
    return present if present.size else None


def _weighted_accuracy(compared: _Comparison) -> float:
    """Azure's formula: each target weighted by how often its true value occurs."""
    y_true, y_pred = compared.y_true.ravel(), compared.y_pred.ravel()
    weights = np.bincount(y_true)[y_true]
    return skm.accuracy_score(y_true, y_pred, sample_weight=weights)


def _norm_macro_recall(compared: _Comparison) -> float:
    """Macro recall rescaled so that chance scores 0 and perfection 1 (Azure's definition)."""
    support = compared.true_bin.sum(axis=0)
    present = support > 0
    n_present = int(present.sum())
    if n_present == 0 or (n_present == 1 and not compared.task.is_multilabel):
        return float("nan")
    chance = 0.5 if compared.task.is_multilabel else 1.0 / n_present
    true_pos = (compared.true_bin & compared.pred_bin).sum(axis=0)
    recall = float(np.mean(true_pos[present] / support[present]))
    return max(0.0, (recall - chance) / (1.0 - chance))


def _log_loss(compared: _Comparison) -> float:
    if compared.task.is_multilabel:
        # One binary problem per (example, label): sklearn reads 1-D probs as P(y = 1).
        return skm.log_loss(compared.true_bin.ravel(), compared.probs.ravel(), labels=[0, 1])
    # Renormalise away float32 drift so sklearn does not warn; _prepare rejected real misfits.
    probs = compared.probs / compared.probs.sum(axis=1, keepdims=True)
    return skm.log_loss(compared.y_true, probs, labels=np.arange(probs.shape[1]))


def _matthews(compared: _Comparison) -> float:
    # sklearn's MCC has no multilabel form; pooling pairs is what Azure's flat arrays imply.
    y_true, y_pred = compared.y_true.ravel(), compared.y_pred.ravel()
    return float(np.clip(skm.matthews_corrcoef(y_true, y_pred), -1.0, 1.0))


def _ranking_metrics(
    compared: _Comparison, prefix: str, score: Callable[..., float], *, need_negatives: bool
) -> dict[str, float]:
    """macro/weighted over the classes where `score` is defined, micro over all pairs."""
    support = compared.true_bin.sum(axis=0)
    n = compared.true_bin.shape[0]
    valid = (support > 0) & (support < n) if need_negatives else support > 0
    nan = float("nan")
    out = {f"{prefix}_macro": nan, f"{prefix}_weighted": nan, f"{prefix}_micro": nan}
    if valid.any():
        y, p = compared.true_bin[:, valid], compared.probs[:, valid]
        if y.shape[1] == 1:  # a single column reads as a binary target, not an indicator
            per_class = np.array([score(y[:, 0], p[:, 0])])
        else:
            per_class = np.asarray(score(y, p, average=None))
        out[f"{prefix}_macro"] = float(per_class.mean())
        out[f"{prefix}_weighted"] = float(np.average(per_class, weights=support[valid]))
    pooled = compared.true_bin.ravel()
    positives = int(pooled.sum())
    if positives > 0 and (positives < pooled.size or not need_negatives):
        out[f"{prefix}_micro"] = float(score(pooled, compared.probs.ravel()))
    return out
