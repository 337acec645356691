"""Calibration: reliability bins, expected calibration error, and temperature scaling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deitkit.errors import ConfigError
from deitkit.tasks import Task

RELIABILITY_BINS = 15  # as in Guo et al. (2017), "On Calibration of Modern Neural Networks"
# Temperatures searched when fitting: far enough to flatten or sharpen any trained model.
TEMPERATURE_RANGE = (0.05, 20.0)
# Probabilities are clipped this far from 0 and 1 before logits are recovered from them.
_EPS = 1e-7


@dataclass(frozen=True)
class Reliability:
    """Confidence against accuracy in equal-width confidence bins.

    Multiclass: one point per image (confidence = top probability, correct = argmax is true).
    Multilabel: one point per (image, label) pair (confidence = the probability of the label
    being present, "accuracy" = how often it is), the binary reliability of every label pooled.

    Attributes:
        edges: Bin edges, `bins + 1` values from 0 to 1.
        confidence: Mean confidence per bin (NaN for an empty bin).
        accuracy: Observed accuracy (or frequency) per bin (NaN for an empty bin).
        count: Points per bin.
        ece: Expected calibration error: the count-weighted mean |accuracy - confidence|.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    ece: float


def reliability(
    task: Task, probs: np.ndarray, y_true: np.ndarray, *, bins: int = RELIABILITY_BINS
) -> Reliability:
    """Reliability bins and ECE of `probs` (N, C) against `y_true` (ids, or an (N, C) indicator)."""
    probs = np.asarray(probs, dtype=np.float64)
    if task.is_multilabel:
        confidence, correct = probs.ravel(), np.asarray(y_true, dtype=np.float64).ravel()
    else:
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bins are (lo, hi]; a confidence of exactly 0 joins the first.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / count
        mean_acc = np.bincount(which, weights=correct, minlength=bins) / count
    filled = count > 0
    gaps = np.abs(mean_acc[filled] - mean_conf[filled])
    ece = float((gaps * count[filled]).sum() / max(count.sum(), 1))
    return Reliability(edges, mean_conf, mean_acc, count, ece)


def logits_from_probs(task: Task, probs: np.ndarray) -> np.ndarray:
    """Logits that give `probs` back under the task's activation (log-probabilities for softmax,
    which differ from the model's logits by a per-row constant that softmax ignores)."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0 - _EPS)
    if task.is_multilabel:
        return np.log(probs) - np.log1p(-probs)
    return np.log(probs)


def apply_temperature(task: Task, logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities of `logits / temperature` under the task's activation, as float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if task.is_multilabel:
        return 1.0 / (1.0 + np.exp(-scaled))
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(task: Task, probs: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature T > 0 that minimises the negative log-likelihood of `y_true` under
    `activation(logits / T)`, with logits recovered from `probs` (temperature scaling, fitted on
    a validation set; it never changes a multiclass argmax).

    Raises:
        ConfigError: there are no examples to fit on.
    """
    from scipy.optimize import minimize_scalar  # only here: scipy takes a while to import

    if len(probs) == 0:
        raise ConfigError("temperature scaling needs at least one validation image")
    logits = logits_from_probs(task, probs)
    y_true = np.asarray(y_true)

    def nll(temperature: float) -> float:
        scaled = np.clip(apply_temperature(task, logits, temperature), _EPS, 1.0 - _EPS)
        if task.is_multilabel:
            return float(-(y_true * np.log(scaled) + (1 - y_true) * np.log1p(-scaled)).mean())
        return float(-np.log(scaled[np.arange(len(y_true)), y_true]).mean())

    # The NLL is smooth and unimodal in log T; search there, bounded.
    low, high = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(lambda t: nll(float(np.exp(t))), bounds=(low, high), method="bounded")
    return float(np.exp(found.x))
