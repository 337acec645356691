"""DeiT's distillation loss, and the Trainer that scores the student's batch with the teacher.

Touvron et al., "Training data-efficient image transformers & distillation through attention"
(2021), section 4. With the student's class logits Z_c, distillation logits Z_d (the same head
for a student without a distillation token), the teacher's logits Z_t, the labels y and
alpha = --distillation-alpha:

    loss = (1 - alpha) * L_task(Z_c, y) + alpha * L_distill(Z_d, Z_t)

where L_task is the run's own loss (`TaskLoss`: cross-entropy, or BCE for multilabel) and

    hard, multiclass:  CE(Z_d, argmax Z_t)
    soft, multiclass:  tau^2 * KL(softmax(Z_t / tau) || softmax(Z_d / tau))
    hard, multilabel:  BCE(Z_d, [sigmoid(Z_t) > 0.5])
    soft, multilabel:  tau^2 * BCE(Z_d / tau, sigmoid(Z_t / tau))

The paper's hard distillation weighs both terms 1/2 (alpha 0.5, the default); its soft one is
the Keras tutorial's with alpha on the distillation term.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deitkit.tasks import Task
from deitkit.training.checkpoints import CheckpointTrainer
from deitkit.training.config import DISTILLATIONS
from deitkit.training.loss import TaskLoss
from deitkit.training.teacher import Teacher

HARD, SOFT = DISTILLATIONS  # the names --distillation takes


def heads(outputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(class logits, distillation logits): a distilled DeiT's two heads, else one head twice."""
    get = outputs.get if isinstance(outputs, dict) else lambda key: getattr(outputs, key, None)
    cls_logits, distillation_logits = get("cls_logits"), get("distillation_logits")
    if cls_logits is None or distillation_logits is None:
        logits = get("logits")
        return logits, logits
    return cls_logits, distillation_logits


class DistillationLoss:
    """The loss above, for the student's outputs, the labels and the teacher's logits."""

    def __init__(self, task_loss: TaskLoss, *, kind: str = HARD, alpha: float, tau: float = 1.0):
        self.task_loss = task_loss
        self.kind = kind
        self.alpha = alpha
        self.tau = tau

    @property
    def task(self) -> Task:
        return self.task_loss.task

    def __call__(self, outputs: Any, labels: torch.Tensor, teacher_logits: torch.Tensor):
        cls_logits, distillation_logits = heads(outputs)
        label_term = self.task_loss({"logits": cls_logits}, labels)
        teacher_term = self.distill(distillation_logits, teacher_logits)
        return (1 - self.alpha) * label_term + self.alpha * teacher_term

    def distill(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """L_distill: the student's logits against the teacher's (fp32 whatever ran the pass)."""
        student, teacher, tau = student.float(), teacher.float(), self.tau
        if self.task.is_multilabel:
            if self.kind == HARD:
                return F.binary_cross_entropy_with_logits(student, (teacher > 0).float())
            targets = torch.sigmoid(teacher / tau)
            return F.binary_cross_entropy_with_logits(student / tau, targets) * tau**2
        if self.kind == HARD:
            return F.cross_entropy(student, teacher.argmax(dim=-1))
        # tau^2 keeps the gradient's scale independent of tau (Hinton et al. 2015).
        return (
            F.kl_div(
                F.log_softmax(student / tau, dim=-1),
                F.log_softmax(teacher / tau, dim=-1),
                reduction="batchmean",
                log_target=True,
            )
            * tau**2
        )


class DistillationTrainer(CheckpointTrainer):
    """The Trainer whose training loss adds the teacher's term (evaluation keeps the task loss).

    The teacher lives outside the model: no optimizer, checkpoint or DeepSpeed engine sees it,
    and each process of a distributed run holds its own copy.
    """

    def __init__(self, *args, teacher: Teacher, distillation_loss: DistillationLoss, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.distillation_loss = distillation_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            # Validation scores what serves: the averaged heads against the labels.
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        # The same augmented batch (mixup and cutmix included) the student saw.
        teacher_logits = self.teacher(inputs["pixel_values"])
        loss = self.distillation_loss(outputs, labels, teacher_logits)
        return (loss, outputs) if return_outputs else loss


def served_logits(logits: Any, labels: Any = None) -> torch.Tensor:
    """`preprocess_logits_for_metrics`: the logits a distilled DeiT serves (its heads averaged),
    not the tuple (logits, cls_logits, distillation_logits) its output holds."""
    return logits[0] if isinstance(logits, tuple | list) else logits


def distillation_record(teacher: str, *, kind: str, alpha: float, tau: float, token: bool):
    """What the package records of a distilled model (deitkit.json's `distillation`)."""
    return {
        "distilled_from": teacher,
        "distillation": kind,
        "distillation_alpha": alpha,
        "distillation_tau": tau,
        "distillation_token": token,
    }
