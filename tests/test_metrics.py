"""Tests for deitkit.metrics: values checked against small cases worked out by hand."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from deitkit.errors import ConfigError, DataError
from deitkit.metrics import (
    METRIC_NAMES,
    PRIMARY_METRIC,
    compute_metrics,
    confusion,
    per_class_table,
)
from deitkit.tasks import Task

MC, ML = Task.MULTICLASS, Task.MULTILABEL

# Multiclass, 3 classes, 4 examples; argmax predictions [0, 1, 1, 2]: example 1 is wrong.
MC_PROBS = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
MC_TRUE = np.array([0, 0, 1, 2])

# Multilabel, 3 labels, 4 examples; at 0.5 the predictions are
# [1,1,1] [0,1,0] [1,0,0] [0,0,0] against the truth below.
ML_PROBS = np.array([[0.9, 0.6, 0.8], [0.2, 0.7, 0.1], [0.6, 0.4, 0.3], [0.1, 0.2, 0.45]])
ML_TRUE = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    # Metric code must not spam sklearn warnings, in normal or edge cases.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_multiclass_hand_computed_case():
    m = compute_metrics(MC, MC_PROBS, MC_TRUE, labels=["a", "b", "c"])
    # Per class (P, R, F1): a (1, 1/2, 2/3), b (1/2, 1, 2/3), c (1, 1, 1); supports 2, 1, 1.
    expected = {
        "accuracy": 3 / 4,
        "weighted_accuracy": (0.5 + 0.25 + 0.25) / (0.5 + 0.5 + 0.25 + 0.25),
        "balanced_accuracy": 5 / 6,
        "norm_macro_recall": (5 / 6 - 1 / 3) / (1 - 1 / 3),
        "log_loss": -(math.log(0.7) + math.log(0.2) + math.log(0.8) + math.log(0.4)) / 4,
        # (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) = (12 - 5) / 10
        "matthews_correlation": 0.7,
        "precision_score_macro": 2.5 / 3,
        "precision_score_micro": 0.75,
        "precision_score_weighted": (2 * 1 + 0.5 + 1) / 4,
        "recall_score_macro": 2.5 / 3,
        "recall_score_micro": 0.75,
        "recall_score_weighted": 0.75,
        "f1_score_macro": 7 / 9,
        "f1_score_micro": 0.75,
        "f1_score_weighted": 0.75,
        # One-vs-rest AUC: a 3/4 (0.2 ranks below the negative 0.3), b 1, c 1.
        "AUC_macro": (0.75 + 1 + 1) / 3,
        "AUC_weighted": (2 * 0.75 + 1 + 1) / 4,
        # 4 positives x 8 negatives over all pairs: 8 + 3.5 (one tie) + 8 + 7 wins.
        "AUC_micro": 26.5 / 32,
        # AP of a: ranks pos, neg, pos -> 1/2 * 1 + 1/2 * 2/3.
        "average_precision_score_macro": (5 / 6 + 1 + 1) / 3,
        "average_precision_score_weighted": (2 * 5 / 6 + 1 + 1) / 4,
        # Pooled ranking .8+ .7+ .5- .4+ .3- .3- .3- {.2+ .2-} .1- .1- .1-
        "average_precision_score_micro": 0.25 * (1 + 1 + 0.75 + 4 / 9),
    }
    assert set(m) == set(expected)
    for name, value in expected.items():
        assert m[name] == pytest.approx(value), name


def test_multilabel_hand_computed_case():
    m = compute_metrics(ML, ML_PROBS, ML_TRUE, labels=["a", "b", "c"])
    # Per example Jaccard: {a,c} vs {a,b,c} 2/3; {b} vs {b} 1; {a,b} vs {a} 1/2; {c} vs {} 0.
    assert m["iou"] == pytest.approx((2 / 3 + 1 + 1 / 2 + 0) / 4)
    # Per label (tp, fp, fn): a (2, 0, 0), b (1, 1, 1), c (1, 0, 1).
    assert m["iou_macro"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert m["iou_weighted"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)  # equal supports
    assert m["iou_micro"] == pytest.approx(4 / 7)
    assert m["accuracy"] == pytest.approx(1 / 4)  # subset accuracy: only example 1 exact
    assert m["precision_score_micro"] == pytest.approx(4 / 5)
    assert m["recall_score_micro"] == pytest.approx(4 / 6)
    assert m["recall_score_macro"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert m["balanced_accuracy"] == pytest.approx(m["recall_score_macro"])
    assert m["f1_score_macro"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    assert m["norm_macro_recall"] == pytest.approx((2 / 3 - 0.5) / 0.5)
    # Pooled pairs: tp 4, fp 1, fn 2, tn 5.
    assert m["matthews_correlation"] == pytest.approx((4 * 5 - 1 * 2) / math.sqrt(5 * 6 * 6 * 7))
    assert m["weighted_accuracy"] == pytest.approx(9 / 12)  # six 1s and six 0s: equal weights
    y, p = ML_TRUE.ravel(), ML_PROBS.ravel()
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert m["log_loss"] == pytest.approx(bce)


@pytest.mark.parametrize("task", list(Task))
def test_names_match_metric_names_and_values_are_json_floats(task):
    probs, y_true = (MC_PROBS, MC_TRUE) if task is MC else (ML_PROBS, ML_TRUE)
    m = compute_metrics(task, probs, y_true, labels=["a", "b", "c"])
    assert tuple(m) == METRIC_NAMES[task]
    assert all(type(v) is float for v in m.values())
    assert json.loads(json.dumps(m)) == m
    assert PRIMARY_METRIC[task] == task.primary_metric
    assert PRIMARY_METRIC[task] in METRIC_NAMES[task]


def test_metric_names_per_task():
    iou = {"iou", "iou_micro", "iou_macro", "iou_weighted"}
    assert set(METRIC_NAMES[ML]) - set(METRIC_NAMES[MC]) == iou
    assert not iou & set(METRIC_NAMES[MC])
    for name in ("accuracy", "f1_score_macro", "precision_score_macro", "recall_score_macro"):
        assert name in METRIC_NAMES[MC] and name in METRIC_NAMES[ML]
    assert PRIMARY_METRIC == {MC: "accuracy", ML: "iou"}


def test_perfect_predictions_score_one_and_zero_log_loss():
    y = np.array([0, 1, 2, 0, 2])
    mc = compute_metrics("image-classification", np.eye(3)[y], y, labels=["a", "b", "c"])
    ml = compute_metrics(ML, ML_TRUE.astype(float), ML_TRUE, labels=["a", "b", "c"])
    for m in (mc, ml):
        assert m.pop("log_loss") == pytest.approx(0.0, abs=1e-9)
        assert m == pytest.approx(dict.fromkeys(m, 1.0))


def test_threshold_changes_multilabel_predictions():
    labels = ["a", "b", "c"]
    # At 0.4, example 2 gains b (0.4 counts: predictions use >=) and example 3 gains c.
    low = compute_metrics(ML, ML_PROBS, ML_TRUE, labels=labels, threshold=0.4)
    assert low["iou"] == pytest.approx((2 / 3 + 1 + 1 + 1) / 4)
    assert compute_metrics(ML, ML_PROBS, ML_TRUE, labels=labels, threshold=0.95)["iou"] == 0.0
    table = per_class_table(ML, ML_PROBS, ML_TRUE, labels=labels, threshold=0.4)
    assert [row["predicted"] for row in table] == [2, 3, 2]
    # Threshold-free metrics do not move.
    base = compute_metrics(ML, ML_PROBS, ML_TRUE, labels=labels)
    assert low["AUC_macro"] == base["AUC_macro"]
    assert low["log_loss"] == base["log_loss"]


def test_threshold_is_ignored_for_multiclass():
    a = compute_metrics(MC, MC_PROBS, MC_TRUE, labels=["a", "b", "c"], threshold=0.9)
    assert a == compute_metrics(MC, MC_PROBS, MC_TRUE, labels=["a", "b", "c"])


def test_class_absent_from_truth_and_predictions_is_left_out():
    y = np.array([0, 1, 2, 0])
    m = compute_metrics(MC, np.eye(4)[y], y, labels=["a", "b", "c", "d"])  # "d" never occurs
    assert m["f1_score_macro"] == 1.0
    assert m["AUC_macro"] == 1.0
    assert m["norm_macro_recall"] == 1.0
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])  # label "c" never occurs
    m = compute_metrics(ML, truth.astype(float), truth, labels=["a", "b", "c"])
    assert m["f1_score_macro"] == m["iou_macro"] == m["AUC_macro"] == 1.0


def test_single_class_in_truth_gives_nan_auc_without_raising():
    y = np.array([1, 1, 1])
    probs = np.array([[0.2, 0.7, 0.1, 0.0], [0.5, 0.4, 0.1, 0.0], [0.1, 0.1, 0.8, 0.0]])
    m = compute_metrics(MC, probs, y, labels=["a", "b", "c", "d"])
    assert math.isnan(m["AUC_macro"]) and math.isnan(m["AUC_weighted"])
    assert math.isnan(m["norm_macro_recall"])
    # Pooled pairs still rank: positives .7 .4 .1 against negatives .2 .1 0 .5 .1 0 .1 .8 0
    # win 8, 7 and 3 + 3 ties of the 27 pairs.
    assert m["AUC_micro"] == pytest.approx((8 + 7 + 3 + 1.5) / 27)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["matthews_correlation"] == 0.0


def test_multilabel_empty_truth_and_prediction_counts_as_perfect_iou():
    truth = np.array([[1, 0], [0, 0]])
    probs = np.array([[0.9, 0.1], [0.2, 0.3]])
    m = compute_metrics(ML, probs, truth, labels=["a", "b"])
    assert m["iou"] == 1.0
    assert m["accuracy"] == 1.0


def test_multilabel_without_any_positive_does_not_raise():
    truth = np.zeros((3, 2), dtype=int)
    m = compute_metrics(ML, np.full((3, 2), 0.1), truth, labels=["a", "b"])
    assert m["iou"] == 1.0 and m["accuracy"] == 1.0
    assert math.isnan(m["AUC_micro"]) and math.isnan(m["average_precision_score_macro"])


def test_per_class_table_multiclass():
    rows = per_class_table(MC, MC_PROBS, MC_TRUE, labels=["a", "b", "c"])
    assert [r["label"] for r in rows] == ["a", "b", "c"]
    assert [(r["support"], r["predicted"]) for r in rows] == [(2, 1), (1, 2), (1, 1)]
    assert [(r["precision"], r["recall"]) for r in rows] == [(1.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert [r["f1"] for r in rows] == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert json.loads(json.dumps(rows)) == rows


def test_per_class_table_multilabel_and_absent_class():
    rows = per_class_table(ML, ML_PROBS, ML_TRUE, labels=["a", "b", "c"])
    assert [(r["support"], r["predicted"]) for r in rows] == [(2, 2), (2, 2), (2, 1)]
    assert [r["f1"] for r in rows] == pytest.approx([1.0, 0.5, 2 / 3])
    y = np.array([0, 1, 0])
    rows = per_class_table(MC, np.eye(3)[y], y, labels=["a", "b", "c"])
    assert rows[2] == {
        "label": "c",
        "support": 0,
        "predicted": 0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }


def test_confusion_multiclass_rows_are_truth():
    matrix = confusion(MC, MC_PROBS, MC_TRUE, labels=["a", "b", "c"])
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    y = np.array([0, 0])
    matrix = confusion(MC, np.eye(3)[y], y, labels=["a", "b", "c"])
    assert matrix.shape == (3, 3) and matrix[0, 0] == 2 and matrix.sum() == 2


def test_confusion_multilabel_per_label_tn_fp_fn_tp():
    matrix = confusion(ML, ML_PROBS, ML_TRUE, labels=["a", "b", "c"])
    assert matrix.shape == (3, 2, 2)
    np.testing.assert_array_equal(matrix[0], [[2, 0], [0, 2]])
    np.testing.assert_array_equal(matrix[1], [[1, 1], [1, 1]])
    np.testing.assert_array_equal(matrix[2], [[2, 0], [1, 1]])


def test_float32_softmax_is_accepted():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 30)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 30, size=64)
    m = compute_metrics(MC, probs, y, labels=[f"c{i}" for i in range(30)])
    assert 0.0 <= m["accuracy"] <= 1.0 and m["log_loss"] > 0.0


@pytest.mark.parametrize(
    ("task", "probs", "y_true", "message"),
    [
        (MC, MC_PROBS[:, :2], MC_TRUE, "shape"),
        (MC, MC_PROBS[:0], MC_TRUE[:0], "N >= 1"),
        (MC, MC_PROBS, np.array([0, 0, 3, 1]), "class id 3 of example 2"),
        (MC, MC_PROBS, MC_TRUE.astype(float), "integer class ids"),
        (MC, MC_PROBS * 2, MC_TRUE, "example 0"),
        (MC, MC_PROBS * 0.5, MC_TRUE, "softmax"),
        (MC, np.where(MC_PROBS == 0.8, np.nan, MC_PROBS), MC_TRUE, "example 2"),
        (ML, ML_PROBS, ML_TRUE[:, :2], "shape"),
        (ML, ML_PROBS, np.where(ML_TRUE == 1, 2, 0), "example 0 is not a 0/1"),
    ],
)
def test_invalid_inputs_raise_data_error(task, probs, y_true, message):
    with pytest.raises(DataError, match=message):
        compute_metrics(task, probs, y_true, labels=["a", "b", "c"])


def test_invalid_task_or_threshold_raise_config_error():
    with pytest.raises(ConfigError, match="unknown task"):
        compute_metrics("detection", MC_PROBS, MC_TRUE, labels=["a", "b", "c"])
    with pytest.raises(ConfigError, match=r"threshold 1\.5"):
        compute_metrics(ML, ML_PROBS, ML_TRUE, labels=["a", "b", "c"], threshold=1.5)
