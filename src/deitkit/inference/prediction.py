"""One image's prediction: probabilities in label order, and the label choices made from them."""

from __future__ import annotations

from dataclasses import dataclass

from deitkit.errors import ConfigError
from deitkit.tasks import Task, check_top_k


@dataclass(frozen=True)
class Prediction:
    """The model's output for one image.

    Attributes:
        probs: One probability per label, in label order (softmax for multiclass, so they sum to
            1; sigmoid for multilabel, each in [0, 1] on its own).
        labels: The full label list (the checkpoint's id2label order).
        task: Picks how `predicted` chooses labels.
        threshold: The default threshold of `predicted` for multilabel models without
            per-label thresholds.
        thresholds: The model's per-label thresholds (multilabel), in label order, or None.
    """

    probs: list[float]
    labels: list[str]
    task: Task
    threshold: float = 0.5
    thresholds: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ConfigError(
                f"a prediction needs one threshold per label ({len(self.labels)}), "
                f"got {len(self.thresholds)}"
            )

    def top_k(self, k: int | None = None) -> list[tuple[str, float]]:
        """The `k` most probable (label, probability) pairs, best first; None: all of them.

        Ties keep label order, so the output is the same on every run.
        """
        k = len(self.labels) if k is None else check_top_k(k)
        order = sorted(range(len(self.probs)), key=lambda i: -self.probs[i])
        return [(self.labels[i], self.probs[i]) for i in order[:k]]

    def predicted(self, threshold: float | None = None, top_k: int | None = None) -> list[str]:
        """The labels the model predicts, best first, as its task chooses them (`Task.choose`).

        Multiclass: the `top_k` most probable (default 1). Multilabel: those at or over
        `threshold` when given (every label), else each at or over its own threshold (the
        model's per-label thresholds, else its default threshold); the `top_k` most probable
        of them (default: no cap).
        """
        if threshold is None and self.thresholds is not None:
            per_label = dict(zip(self.labels, self.thresholds, strict=True))
            return self.task.choose(self.top_k(), threshold=per_label, top_k=top_k)
        threshold = self.threshold if threshold is None else threshold
        return self.task.choose(self.top_k(), threshold=threshold, top_k=top_k)

    def to_dict(self) -> dict[str, list]:
        """`{"probs": [...], "labels": [...]}`, the packaged model's per-image output."""
        return {"probs": list(self.probs), "labels": list(self.labels)}
