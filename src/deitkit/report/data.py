"""What an evaluation report shows: the numbers and images `deitkit.report` renders."""

# ThresholdTuning and Calibration live in deitkit.tuning, which makes them.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deitkit.tasks import Task
from deitkit.tuning import Calibration, ThresholdTuning


@dataclass(frozen=True)
class ReportData:
    """Everything one evaluation report shows.

    Attributes:
        title: The page's heading (which model on which data).
        task: Multiclass or multilabel.
        labels: Label names, in the model's output order.
        metrics: Azure ML's metric names -> value (NaN where undefined), plus
            `top_5_accuracy` for multiclass models with more than 5 labels.
        probs: (N, C) probabilities as the model now serves them (calibrated when calibrated).
        y_true: Class ids (N,) for multiclass, or an (N, C) 0/1 indicator for multilabel.
        images: The N image files, in row order (for the gallery of mistakes).
        image_names: How to show each image (its path relative to the data).
        thresholds: The multilabel decision threshold per label now in use (label order);
            for multiclass, unused.
        tuning: Set when thresholds were tuned on this data.
        calibration: Set when a temperature was fitted on this data.
        history: The Hugging Face Trainer's `log_history` when the model comes from
            `deitkit finetune` (dicts with `epoch`, `step`, `loss`, `eval_loss`, `eval_*`, ...).
        facts: Short (name, value) lines shown under the title (data, images, engine, ...).
    """

    title: str
    task: Task
    labels: tuple[str, ...]
    metrics: Mapping[str, float]
    probs: np.ndarray
    y_true: np.ndarray
    images: tuple[Path, ...]
    image_names: tuple[str, ...]
    thresholds: tuple[float, ...]
    tuning: ThresholdTuning | None = None
    calibration: Calibration | None = None
    history: Sequence[Mapping[str, Any]] | None = None
    facts: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def primary_metric(self) -> str:
        return self.task.primary_metric
