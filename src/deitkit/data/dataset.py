"""The one in-memory representation every dataset layout is read into."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from deitkit.tasks import Task


@dataclass(frozen=True)
class Example:
    """One image and its labels; `origin` says where the entry came from (e.g. `labels.csv:12`)."""

    path: Path
    labels: tuple[str, ...]
    origin: str


@dataclass(frozen=True)
class ImageDataset:
    """Images with labels, the sorted label set and the task, as read from one input.

    `layout` is one of `class-folders`, `multilabel-folder`, `jsonl`, `mltable` (a zip is
    reported as the layout found inside it) or a Hugging Face one (`save-to-disk`, `parquet`,
    `arrow`, `imagefolder-metadata`, `hub`). `root` is the folder relative paths resolve from.
    """

    examples: tuple[Example, ...]
    labels: tuple[str, ...]
    task: Task
    root: Path
    layout: str

    def __len__(self) -> int:
        return len(self.examples)

    def label_counts(self) -> dict[str, int]:
        """Images per label, in label order (labels with no image count 0)."""
        counts = Counter(label for ex in self.examples for label in ex.labels)
        return {label: counts.get(label, 0) for label in self.labels}

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}
