"""One image's prediction: probabilities in label order, and the label choices made from them."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from deitkit.errors import ConfigError
from deitkit.tasks import Task


@dataclass(frozen=True)
class Prediction:
    """The model's output for one image.

    Attributes:
        probs: One probability per label, in label order (softmax for multiclass, so they sum to
            1; sigmoid for multilabel, each in [0, 1] on its own).
        labels: The full label list (the checkpoint's id2label order).
        task: Picks how `predicted` chooses labels.
        threshold: The default threshold of `predicted` for multilabel models.
    """

    probs: list[float]
    labels: list[str]
    task: Task
    threshold: float = 0.5

    def top_k(self, k: int | None = None) -> list[tuple[str, float]]:
        """The `k` most probable (label, probability) pairs, best first; None: all of them.

        Ties keep label order, so the output is the same on every run.
        """
        k = len(self.labels) if k is None else check_top_k(k)
        order = sorted(range(len(self.probs)), key=lambda i: -self.probs[i])
        return [(self.labels[i], self.probs[i]) for i in order[:k]]

    def predicted(self, threshold: float | None = None, top_k: int | None = None) -> list[str]:
        """The labels the model predicts, best first.

        Multiclass: the `top_k` most probable labels (default 1, the argmax); `threshold` is not
        used. Multilabel: every label with probability >= `threshold` (default: the model's),
        at most `top_k` of them (default: no cap).
        """
        if self.task.is_multilabel:
            threshold = self.threshold if threshold is None else check_threshold(threshold)
            ranked = self.top_k(top_k)
            return [label for label, prob in ranked if prob >= threshold]
        return [label for label, _ in self.top_k(1 if top_k is None else top_k)]

    def to_dict(self) -> dict[str, list]:
        """`{"probs": [...], "labels": [...]}`, the packaged model's per-image output."""
        return {"probs": list(self.probs), "labels": list(self.labels)}


def check_threshold(value: float, *, name: str = "threshold") -> float:
    """Return `value` as a float in [0, 1], or raise ConfigError naming it."""
    # numbers.Real and Integral include the numpy scalars MLflow passes params as.
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_top_k(value: int, *, name: str = "top_k") -> int:
    """Return `value` as an int >= 1, or raise ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
