"""The two tasks, named as Azure ML names them; one value picks loss, activation and decoding."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

from deitkit.errors import ConfigError

# A torch.Tensor in practice; typed loosely so that this module does not import torch.
Logits = TypeVar("Logits")


class Task(StrEnum):
    """An image-classification task (values are Azure ML's `task_name`)."""

    MULTICLASS = "image-classification"
    MULTILABEL = "image-classification-multilabel"

    @property
    def is_multilabel(self) -> bool:
        return self is Task.MULTILABEL

    @property
    def primary_metric(self) -> str:
        return "iou" if self.is_multilabel else "accuracy"

    def activate(self, logits: Logits) -> Logits:
        """Probabilities from logits (N, C): one softmax over the labels, or independent sigmoids.

        Args:
            logits: A torch tensor; the result has its shape, dtype and device.
        """
        return logits.sigmoid() if self.is_multilabel else logits.softmax(dim=-1)

    def choose(
        self,
        ranked: Sequence[tuple[str, float]],
        *,
        threshold: float | Mapping[str, float],
        top_k: int | None = None,
    ) -> list[str]:
        """The predicted labels among (label, probability) pairs ranked best first.

        Multiclass: the `top_k` most probable labels (default 1, the argmax); `threshold` is not
        used. Multilabel: every label with probability >= its threshold (`threshold` for all,
        or a label → threshold mapping naming every ranked label), the `top_k` most probable of
        them (default: no cap).

        Raises:
            ConfigError: a threshold (multilabel) is not in [0, 1] or a ranked label has none,
                or `top_k` is not >= 1.
        """
        if self.is_multilabel:
            limits = _limits(ranked, threshold)
            chosen = [label for label, prob in ranked if prob >= limits[label]]
            return chosen if top_k is None else chosen[: check_top_k(top_k)]
        return [label for label, _ in ranked[: 1 if top_k is None else check_top_k(top_k)]]


def _limits(
    ranked: Sequence[tuple[str, float]], threshold: float | Mapping[str, float]
) -> dict[str, float]:
    """Each ranked label's threshold, checked."""
    if not isinstance(threshold, Mapping):
        return dict.fromkeys((label for label, _ in ranked), check_threshold(threshold))
    missing = [label for label, _ in ranked if label not in threshold]
    if missing:
        raise ConfigError(f"thresholds name no threshold for the label {missing[0]!r}")
    return {
        label: check_threshold(threshold[label], name=f"threshold of {label!r}")
        for label, _ in ranked
    }


def parse_task(name: str | Task) -> Task:
    """Return the Task for `name`, or raise ConfigError naming the allowed values."""
    try:
        return Task(name)
    except ValueError:
        allowed = ", ".join(t.value for t in Task)
        raise ConfigError(f"unknown task {name!r}; expected one of: {allowed}") from None


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
