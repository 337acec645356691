"""Ground truth of labelled data for a model's labels: the unknown-label check and the targets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deitkit.data.dataset import Example, ImageDataset
from deitkit.errors import DataError
from deitkit.tasks import Task


def check_known_labels(dataset: ImageDataset, labels: Sequence[str]) -> None:
    """Raise DataError if the data uses a label the model does not have, naming a file."""
    known = set(labels)
    unknown: dict[str, Example] = {}
    for example in dataset.examples:
        for label in example.labels:
            if label not in known:
                unknown.setdefault(label, example)
    if not unknown:
        return
    label, example = next(iter(unknown.items()))
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels)} in all)" if len(labels) > 20 else "")
    others = sorted(set(unknown) - {label})
    more = f"; other unknown labels: {', '.join(map(repr, others))}" if others else ""
    raise DataError(
        f"label {label!r} (from {example.origin}) is not one of the model's labels ({shown}){more}",
        path=example.path,
    )


def targets(examples: Sequence[Example], labels: Sequence[str], task: Task) -> np.ndarray:
    """Class ids (N,) for multiclass, or an (N, C) 0/1 indicator for multilabel."""
    index = {label: i for i, label in enumerate(labels)}
    if task.is_multilabel:
        indicator = np.zeros((len(examples), len(labels)), dtype=np.int8)
        for row, example in enumerate(examples):
            indicator[row, [index[label] for label in example.labels]] = 1
        return indicator
    return np.array([index[example.labels[0]] for example in examples], dtype=np.int64)
