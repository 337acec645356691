"""What the model decided on each image, at the decision rule now in use, checked once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deitkit import metrics
from deitkit.errors import DataError
from deitkit.report.data import ReportData


@dataclass(frozen=True)
class Outcomes:
    """Truth and prediction as (N, C) 0/1 indicators, with the outcome counts the report shows.

    Attributes:
        true_bin: (N, C) int8, the true labels.
        pred_bin: (N, C) int8, the predicted labels (argmax, or each label at its threshold).
        confusion: Multiclass (C, C) counts, rows true; multilabel (C, 2, 2) `[[tn, fp], [fn, tp]]`.
        per_class: `metrics.per_class_table` rows, one per label in label order.
    """

    true_bin: np.ndarray
    pred_bin: np.ndarray
    confusion: np.ndarray
    per_class: list[dict]


def decide(data: ReportData) -> Outcomes:
    """The predictions and counts of `data`; multilabel labels each at their own threshold.

    Raises:
        DataError: the arrays, images, names or thresholds disagree in length.
    """
    _check(data)
    c = len(data.labels)
    probs = np.asarray(data.probs, dtype=np.float64)
    if data.task.is_multilabel:
        # metrics' functions take one scalar threshold; the 0/1 decisions made at each label's
        # own threshold, read at 0.5, give the same counts through the same code.
        pred_bin = (probs >= np.asarray(data.thresholds, dtype=np.float64)).astype(np.int8)
        decided, true_bin = pred_bin.astype(np.float64), np.asarray(data.y_true).astype(np.int8)
    else:
        decided = probs
        eye = np.eye(c, dtype=np.int8)
        pred_bin, true_bin = eye[probs.argmax(axis=1)], eye[np.asarray(data.y_true)]
    kwargs = {"labels": data.labels, "threshold": 0.5}
    return Outcomes(
        true_bin=true_bin,
        pred_bin=pred_bin,
        confusion=metrics.confusion(data.task, decided, data.y_true, **kwargs),
        per_class=metrics.per_class_table(data.task, decided, data.y_true, **kwargs),
    )


def _check(data: ReportData) -> None:
    probs = np.asarray(data.probs)
    c = len(data.labels)
    if probs.ndim != 2 or probs.shape[1] != c or probs.shape[0] == 0:
        raise DataError(f"report: probs has shape {probs.shape}; expected (N, {c}) with N >= 1")
    n = probs.shape[0]
    if len(data.images) != n or len(data.image_names) != n:
        raise DataError(
            f"report: {n} rows of probabilities but {len(data.images)} images and "
            f"{len(data.image_names)} image names"
        )
    if data.task.is_multilabel and len(data.thresholds) != c:
        raise DataError(f"report: {len(data.thresholds)} thresholds for {c} labels")
    if data.calibration is not None and np.shape(data.calibration.probs_before) != probs.shape:
        raise DataError(
            f"report: probabilities before calibration have shape "
            f"{np.shape(data.calibration.probs_before)}; expected {probs.shape}"
        )
    if data.tuning is not None and not (
        len(data.tuning.before)
        == len(data.tuning.after)
        == len(data.tuning.f1_before)
        == len(data.tuning.f1_after)
        == c
    ):
        raise DataError(f"report: threshold tuning must give one value per label ({c})")
