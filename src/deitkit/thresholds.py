"""Per-label decision thresholds for multilabel models, chosen on a validation set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deitkit.errors import ConfigError

DEFAULT_THRESHOLD = 0.5


def tune_thresholds(
    probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str]
) -> tuple[float, ...]:
    """For each label (in label order), the threshold that maximises its F1 on (`probs`, `y_true`).

    Candidates are the label's own probabilities (where F1 can change); a label whose F1 cannot
    beat its F1 at 0.5 (no positives in the data, or already best there) keeps 0.5, so tuning
    never chooses a threshold without evidence. Ties go to the threshold nearest 0.5.

    Args:
        probs: (N, C) sigmoid probabilities.
        y_true: (N, C) 0/1 indicator.
        labels: The C label names, in column order.

    Raises:
        ConfigError: shapes disagree, or there are no examples.
    """
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true)
    if probs.ndim != 2 or probs.shape != y_true.shape or probs.shape[1] != len(labels):
        raise ConfigError(
            f"threshold tuning needs (N, {len(labels)}) probabilities and truth; got "
            f"{probs.shape} and {y_true.shape}"
        )
    if len(probs) == 0:
        raise ConfigError("threshold tuning needs at least one validation image")
    return tuple(
        _best_threshold(column, truth) for column, truth in zip(probs.T, y_true.T, strict=True)
    )


def f1_at(probs: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """F1 of one label's `probs >= threshold` against its 0/1 `truth` (0 when undefined)."""
    predicted = probs >= threshold
    tp = float(np.sum(predicted & (truth == 1)))
    denominator = float(predicted.sum() + truth.sum())
    return 2 * tp / denominator if denominator else 0.0


def _best_threshold(probs: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve  # only here: serving never tunes

    if truth.sum() == 0:
        return DEFAULT_THRESHOLD
    precision, recall, candidates = precision_recall_curve(truth, probs)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    best_f1 = f1.max()
    if best_f1 <= f1_at(probs, truth, DEFAULT_THRESHOLD):
        return DEFAULT_THRESHOLD
    ties = candidates[f1 >= best_f1 - 1e-12]
    return float(ties[np.argmin(np.abs(ties - DEFAULT_THRESHOLD))])
