"""The teacher of a distillation run: loaded like --model, frozen, fed the student's own batch."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedModel

from deitkit.errors import ConfigError
from deitkit.models import label_config, model_transform, parse_model_ref, scratch_config
from deitkit.tasks import Task
from deitkit.transforms import EvalTransform

log = logging.getLogger(__name__)

FLAG = "--teacher"


class Teacher:
    """A frozen classifier that scores the student's (augmented, normalised) pixel batches.

    The student's batch is turned into the teacher's own preprocessing where the two differ:
    re-normalised with the teacher's mean and std, and resized to its input size.
    """

    def __init__(self, model: PreTrainedModel, transform: EvalTransform, student: EvalTransform):
        self.model = model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.transform = transform
        self._scale, self._shift = _renormalisation(student, transform)
        same_size = transform.output_size == student.output_size
        self._resize = None if same_size else transform.output_size

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) float32 for the student's pixels (N, 3, H, W), on their device.

        A distilled DeiT teacher answers with its two heads averaged, as it serves.
        """
        first = next(self.model.parameters())
        if first.device != pixels.device or first.dtype != pixels.dtype:
            # Once: the device the run trains on, and the dtype DeepSpeed casts the batch to.
            self.model.to(device=pixels.device, dtype=pixels.dtype)
        pixels = self.adapt(pixels)
        return self.model(pixel_values=pixels).logits.float()

    def adapt(self, pixels: torch.Tensor) -> torch.Tensor:
        """The student's pixels as the teacher's preprocessing would have made them."""
        if self._scale is not None:
            scale = self._scale.to(pixels.device, pixels.dtype).view(1, 3, 1, 1)
            shift = self._shift.to(pixels.device, pixels.dtype).view(1, 3, 1, 1)
            pixels = pixels * scale + shift
        if self._resize is not None:
            pixels = F.interpolate(
                pixels, size=self._resize, mode="bilinear", align_corners=False, antialias=True
            )
        return pixels


def _renormalisation(
    student: EvalTransform, teacher: EvalTransform
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(scale, shift) with (x - m_s) / s_s * scale + shift = (x - m_t) / s_t; None when equal."""
    if (student.mean, student.std) == (teacher.mean, teacher.std):
        return None, None
    mean_s, std_s = torch.tensor(student.mean), torch.tensor(student.std)
    mean_t, std_t = torch.tensor(teacher.mean), torch.tensor(teacher.std)
    return std_s / std_t, (mean_s - mean_t) / std_t


def load_teacher(ref: str, *, labels: Sequence[str], task: Task, student: EvalTransform) -> Teacher:
    """Load the teacher `ref` (anything --model takes, any image-classification architecture).

    A `scratch:` teacher is built for `labels` (tests); any other must have been trained on
    exactly `labels`, in the same order.

    Raises:
        ConfigError: one line naming --teacher, when it cannot be loaded or its labels differ.
    """
    source = parse_model_ref(ref, flag=FLAG)
    if source.kind == "scratch":
        config = scratch_config(source)
        config.update(label_config(labels, task))
        model = AutoModelForImageClassification.from_config(config)
        transform = EvalTransform.for_image_size(config.image_size)
    else:
        try:
            config = AutoConfig.from_pretrained(source.ref)
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(_one_line(f"{FLAG} {ref!r} cannot be loaded: {err}")) from None
        _check_labels(ref, config, labels)
        try:
            transform = model_transform(ref, flag=FLAG)
            model = AutoModelForImageClassification.from_pretrained(source.ref, config=config)
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(_one_line(f"{FLAG} {ref!r} cannot be loaded: {err}")) from None
    log.info(
        "teacher %s: %s, %.1fM parameters",
        ref,
        type(model).__name__,
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    return Teacher(model, transform, student)


def _check_labels(ref: str, config, labels: Sequence[str]) -> None:
    id2label = getattr(config, "id2label", None) or {}
    theirs = [str(id2label.get(i, id2label.get(str(i)))) for i in range(config.num_labels)]
    if theirs != list(labels):
        raise ConfigError(
            f"{FLAG} {ref!r} was trained on labels {_short(theirs)}, the data has "
            f"{_short(labels)}; a teacher must answer for the same labels in the same order"
        )


def _short(labels: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(str(label) for label in list(labels)[:most])
    more = f", ... ({len(labels)} in all)" if len(labels) > most else ""
    return f"[{shown}{more}]"


def _one_line(message: str) -> str:
    """The first line of `message`: transformers' load errors run over several."""
    return message.strip().splitlines()[0]
