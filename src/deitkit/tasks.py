"""The two tasks, named as Azure ML names them; one value picks loss, activation and decoding."""

from __future__ import annotations

from enum import StrEnum

from deitkit.errors import ConfigError


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


def parse_task(name: str | Task) -> Task:
    """Return the Task for `name`, or raise ConfigError naming the allowed values."""
    try:
        return Task(name)
    except ValueError:
        allowed = ", ".join(t.value for t in Task)
        raise ConfigError(f"unknown task {name!r}; expected one of: {allowed}") from None
