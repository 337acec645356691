"""The task's loss: cross-entropy (soft targets, smoothing, class weights) or BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deitkit.data.dataset import ImageDataset
from deitkit.tasks import Task


def auto_class_weights(dataset: ImageDataset) -> torch.Tensor:
    """Weights from label counts: multiclass `N / (C * count)` (scikit-learn's "balanced"),
    multilabel `negatives / positives` per label (BCE's pos_weight)."""
    counts = torch.tensor(list(dataset.label_counts().values()), dtype=torch.float32).clamp(min=1)
    if dataset.task.is_multilabel:
        return (len(dataset) - counts).clamp(min=1) / counts
    return len(dataset) / (len(counts) * counts)


class TaskLoss:
    """`compute_loss_func` for the Trainer: the task picks the loss, targets may be soft."""

    def __init__(
        self, task: Task, *, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None
    ):
        self.task = task
        self.label_smoothing = label_smoothing
        self.class_weights = class_weights

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        logits = logits.float()  # losses in fp32 even when the forward pass ran in bf16
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.task.is_multilabel:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weights)
        # Hard targets are class ids; mixup/cutmix give probabilities (N, C): both work here.
        return F.cross_entropy(logits, labels, weight=weights, label_smoothing=self.label_smoothing)
