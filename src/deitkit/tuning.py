"""What an evaluation decides on its data: a temperature fitted, per-label thresholds tuned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deitkit import thresholds as threshold_tuning
from deitkit.calibration import apply_temperature, fit_temperature, logits_from_probs
from deitkit.errors import ConfigError
from deitkit.tasks import Task
from deitkit.thresholds import f1_at


@dataclass(frozen=True)
class ThresholdTuning:
    """Multilabel thresholds chosen per label on the evaluated data (`--tune-thresholds`).

    Attributes:
        before: The thresholds the model had, per label (label order).
        after: The tuned thresholds, per label.
        f1_before: Each label's F1 at `before`.
        f1_after: Each label's F1 at `after`.
    """

    before: tuple[float, ...]
    after: tuple[float, ...]
    f1_before: tuple[float, ...]
    f1_after: tuple[float, ...]


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling fitted on the evaluated data (`--calibrate`).

    Attributes:
        temperature: The fitted temperature (probabilities are activation(logits / T)).
        probs_before: (N, C) probabilities before scaling (`ReportData.probs` are after).
    """

    temperature: float
    probs_before: np.ndarray


@dataclass(frozen=True)
class Decisions:
    """The decision rule an evaluation scores with, and what it changed.

    Attributes:
        probs: (N, C) probabilities after any new temperature.
        thresholds: The multilabel threshold per label (label order); all equal unless tuned
            now or before (packaged); for multiclass, unused.
        temperature: The model's temperature after this evaluation (its packaged one times
            the one fitted now).
        tuning: Set when thresholds were tuned on this data.
        calibration: Set when a temperature was fitted on this data.
    """

    probs: np.ndarray
    thresholds: tuple[float, ...]
    temperature: float
    tuning: ThresholdTuning | None = None
    calibration: Calibration | None = None

    @property
    def changed(self) -> bool:
        """True when the model should be written again with these decisions."""
        return self.tuning is not None or self.calibration is not None


def decide(
    task: Task,
    labels: Sequence[str],
    probs: np.ndarray,
    y_true: np.ndarray,
    *,
    thresholds: Sequence[float],
    temperature: float = 1.0,
    tune_thresholds: bool = False,
    calibrate: bool = False,
) -> Decisions:
    """Fit a temperature (first: thresholds are chosen on the probabilities that will be
    served) and tune per-label thresholds, as asked, on `probs` against `y_true`.

    Args:
        task: The model's task.
        labels: Its labels, in column order.
        probs: (N, C) probabilities the model gave at `temperature`.
        y_true: Class ids (N,) or an (N, C) indicator.
        thresholds: The thresholds in use now, one per label.
        temperature: The temperature `probs` were computed at.
        tune_thresholds: Choose a threshold per label maximising its F1 (multilabel only).
        calibrate: Fit temperature scaling.

    Raises:
        ConfigError: thresholds tuned for a multiclass model.
    """
    check_tuning(task, tune_thresholds=tune_thresholds)
    thresholds = tuple(float(t) for t in thresholds)
    calibration = None
    if calibrate:
        scale = fit_temperature(task, probs, y_true)
        calibrated = apply_temperature(task, logits_from_probs(task, probs), scale)
        calibration = Calibration(temperature * scale, np.asarray(probs))
        probs, temperature = calibrated.astype(np.float32), temperature * scale
    tuning = None
    if tune_thresholds:
        tuned = threshold_tuning.tune_thresholds(probs, y_true, labels)
        tuning = ThresholdTuning(
            before=thresholds,
            after=tuned,
            f1_before=_f1s(probs, y_true, thresholds),
            f1_after=_f1s(probs, y_true, tuned),
        )
        thresholds = tuned
    return Decisions(np.asarray(probs), thresholds, temperature, tuning, calibration)


def check_tuning(task: Task, *, tune_thresholds: bool) -> None:
    """Raise ConfigError when thresholds are to be tuned for a multiclass model."""
    if tune_thresholds and not task.is_multilabel:
        raise ConfigError(
            "--tune-thresholds applies to multilabel models; a multiclass model predicts "
            "its most probable label, whatever the threshold"
        )


def _f1s(probs: np.ndarray, y_true: np.ndarray, thresholds: Sequence[float]) -> tuple[float, ...]:
    return tuple(
        f1_at(column, truth, threshold)
        for column, truth, threshold in zip(probs.T, y_true.T, thresholds, strict=True)
    )
