"""Evaluation: Azure ML metric names, values equal to a direct computation, artifacts, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import save_tiny_checkpoint
from PIL import Image

from deitkit.calibration import reliability
from deitkit.data.formats import read_dataset
from deitkit.errors import ConfigError, DataError
from deitkit.evaluation import accuracy_table, evaluate, targets
from deitkit.images import load_image
from deitkit.inference import Classifier
from deitkit.metrics import METRIC_NAMES, compute_metrics, confusion
from deitkit.tasks import Task

LABELS = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory) -> Classifier:
    folder = save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), labels=LABELS)
    return Classifier.from_pretrained(folder, dtype="float32", max_batch_size=5)


@pytest.fixture(scope="module")
def multilabel(multiclass) -> Classifier:
    return Classifier(
        multiclass.model,
        multiclass.transform,
        labels=LABELS,
        task=Task.MULTILABEL,
        threshold=0.5,
        engine=multiclass.engine,
        max_batch_size=5,
    )


def direct_metrics(classifier: Classifier, data: Path, threshold: float) -> dict[str, float]:
    """The metrics computed straight from the engine and deitkit.metrics, image by image."""
    dataset = read_dataset(data, task=classifier.task)
    probs = classifier.predict_images([load_image(e.path) for e in dataset.examples])
    y_true = targets(dataset.examples, LABELS, classifier.task)
    return compute_metrics(classifier.task, probs, y_true, labels=LABELS, threshold=threshold)


def assert_same(written: dict, expected: dict) -> None:
    assert list(written) == list(expected)
    for name, value in expected.items():
        if math.isnan(value):
            assert written[name] is None, name
        else:
            assert written[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.slow
@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_metrics_json_has_azure_names_and_the_direct_values(
    task, request, colour_folders, colour_multilabel, tmp_path
):
    classifier = request.getfixturevalue(task)
    data = colour_multilabel if task == "multilabel" else colour_folders

    result = evaluate(classifier, data, tmp_path / "out", threshold=0.4)

    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # Azure's names, then the calibration error (and top-5 accuracy past 5 labels, below).
    assert list(written) == [*METRIC_NAMES[classifier.task], "expected_calibration_error"]
    del written["expected_calibration_error"]
    assert_same(written, direct_metrics(classifier, data, threshold=0.4))
    assert result.n_scored == 24 and result.unreadable == ()
    assert result.primary_metric == ("iou" if task == "multilabel" else "accuracy")


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_artifacts_exist_are_listed_and_load_with_mlflow(
    task, request, colour_folders, colour_multilabel, tmp_path
):
    from mlflow.models import EvaluationResult

    classifier = request.getfixturevalue(task)
    data = colour_multilabel if task == "multilabel" else colour_folders
    out = tmp_path / "out"

    result = evaluate(classifier, data, out)

    names = {p.name for p in (out / "artifacts").iterdir()}
    assert names == set(result.artifacts)
    assert {"confusion_matrix.png", "confusion_matrix.json", "accuracy_table.json"} <= names
    assert {"per_class.csv", "per_class.json", "per_class.png", "predictions.csv"} <= names
    for picture in ("confusion_matrix.png", "per_class.png"):
        with Image.open(out / "artifacts" / picture) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 200
    loaded = EvaluationResult.load(str(out))
    assert set(loaded.artifacts) == names
    assert loaded.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    per_class = pd.read_csv(out / "artifacts" / "per_class.csv")
    assert list(per_class["label"]) == LABELS
    columns = ["label", "support", "predicted", "precision", "recall", "f1"]
    assert list(per_class.columns) == columns + (["threshold"] if task == "multilabel" else [])


def test_confusion_matrix_json_is_azure_shaped_and_matches(multiclass, colour_folders, tmp_path):
    evaluate(multiclass, colour_folders, tmp_path / "out")
    artifact = json.loads((tmp_path / "out/artifacts/confusion_matrix.json").read_text())
    predictions = pd.read_csv(tmp_path / "out/artifacts/predictions.csv")

    assert artifact["schema_type"] == "confusion_matrix"
    assert artifact["data"]["class_labels"] == LABELS
    matrix = np.array(artifact["data"]["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 24
    assert list(matrix.sum(axis=1)) == [8, 8, 8]  # eight images of each colour
    for i, truth in enumerate(LABELS):
        rows = predictions[predictions["true"] == json.dumps([truth])]
        for j, guess in enumerate(LABELS):
            assert matrix[i, j] == (rows["predicted"] == json.dumps([guess])).sum()


def test_multilabel_threshold_changes_per_label_precision_and_recall(
    multilabel, colour_multilabel, tmp_path
):
    low = evaluate(multilabel, colour_multilabel, tmp_path / "low", threshold=0.0)
    high = evaluate(multilabel, colour_multilabel, tmp_path / "high", threshold=1.0)

    low_rows = json.loads((tmp_path / "low" / "artifacts" / "per_class.json").read_text())
    high_rows = json.loads((tmp_path / "high" / "artifacts" / "per_class.json").read_text())
    assert low_rows["threshold"] == 0.0 and high_rows["threshold"] == 1.0
    # Everything predicted: recall 1 everywhere; nothing predicted: recall 0.
    assert [row["recall"] for row in low_rows["classes"]] == [1.0, 1.0, 1.0]
    assert [row["predicted"] for row in low_rows["classes"]] == [24, 24, 24]
    assert [row["recall"] for row in high_rows["classes"]] == [0.0, 0.0, 0.0]
    assert low.metrics["recall_score_micro"] == 1.0 and high.metrics["iou"] == 0.0
    matrices = np.array(
        json.loads((tmp_path / "low" / "artifacts" / "confusion_matrix.json").read_text())["data"][
            "matrix"
        ]
    )
    assert matrices.shape == (3, 2, 2)


def test_accuracy_table_counts_match_a_brute_force_sweep():
    rng = np.random.default_rng(0)
    probs = rng.random((40, 3))
    truth = (rng.random((40, 3)) > 0.6).astype(np.int8)

    table = accuracy_table(probs, truth, LABELS)

    data = table["data"]
    assert table["schema_type"] == "accuracy_table" and data["class_labels"] == LABELS
    assert len(data["probability_thresholds"]) == 100
    for c in range(3):
        for k in (0, 17, 50, 99):
            t = data["probability_thresholds"][k]
            guess = probs[:, c] >= t
            expected = [
                int((guess & (truth[:, c] == 1)).sum()),
                int((guess & (truth[:, c] == 0)).sum()),
                int((~guess & (truth[:, c] == 0)).sum()),
                int((~guess & (truth[:, c] == 1)).sum()),
            ]
            assert data["probability_tables"][c][k] == expected
    assert data["percentile_thresholds"][0] == probs.min()
    assert data["percentile_thresholds"][-1] == probs.max()


def test_unknown_labels_are_a_clear_error_naming_a_file(multiclass, colour_folders, tmp_path):
    (colour_folders / "purple").mkdir()
    Image.new("RGB", (20, 20), (120, 0, 120)).save(colour_folders / "purple" / "p.png")
    (colour_folders / "yellow").mkdir()
    Image.new("RGB", (20, 20), (220, 220, 0)).save(colour_folders / "yellow" / "y.png")

    with pytest.raises(DataError) as caught:
        evaluate(multiclass, colour_folders, tmp_path / "out")

    message = str(caught.value)
    assert message.startswith(f"{colour_folders / 'purple' / 'p.png'}: label 'purple'")
    assert "not one of the model's labels (blue, green, red)" in message
    assert "other unknown labels: 'yellow'" in message
    assert not (tmp_path / "out").exists()


def test_unreadable_images_are_left_out_and_listed(multiclass, colour_folders, tmp_path):
    whole = (colour_folders / "red" / "0.png").read_bytes()
    (colour_folders / "red" / "broken.png").write_bytes(whole[: len(whole) // 2])

    result = evaluate(multiclass, colour_folders, tmp_path / "out")

    assert result.n_scored == 24
    ((path, reason),) = result.unreadable
    assert path.endswith("broken.png") and "corrupt" in reason
    summary = json.loads((tmp_path / "out/artifacts/evaluation_summary.json").read_text())
    assert summary["n_images"] == 25 and summary["n_scored"] == 24
    assert summary["unreadable"][0]["path"] == path


def test_confusion_helper_agrees_with_targets(multiclass, colour_folders):
    dataset = read_dataset(colour_folders)
    y = targets(dataset.examples, LABELS, Task.MULTICLASS)
    assert list(np.bincount(y)) == [8, 8, 8]
    probs = np.eye(3)[y]
    assert np.trace(confusion(Task.MULTICLASS, probs, y, labels=LABELS)) == 24


def test_an_output_folder_that_is_not_empty_is_refused_and_left_alone(
    multiclass, colour_folders, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(ConfigError, match="exists and is not empty; choose a new folder"):
        evaluate(multiclass, colour_folders, out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "the user's"


def test_an_empty_folder_is_used_as_azure_mounts_outputs(multiclass, colour_folders, tmp_path):
    out = tmp_path / "mounted"
    out.mkdir()
    (out / ".staging-12345").mkdir()  # what an interrupted evaluation leaves: ours
    result = evaluate(multiclass, colour_folders, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "artifacts", "artifacts_metadata.json", "metrics.json", "report.html",
    ]  # fmt: skip
    assert result.report == out / "report.html"


def test_an_empty_data_set_is_a_one_line_error_and_nothing_is_written(multiclass, tmp_path):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "labels.csv").write_text("filename,labels\n")
    with pytest.raises(DataError) as caught:
        evaluate(multiclass, empty, tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_failure_midway_leaves_nothing_half_written(
    multiclass, colour_folders, tmp_path, monkeypatch
):
    import deitkit.evaluation

    def broken(path, data):
        raise RuntimeError("the report failed")

    monkeypatch.setattr(deitkit.evaluation, "write_report", broken)
    with pytest.raises(RuntimeError, match="the report failed"):
        evaluate(multiclass, colour_folders, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_top_5_accuracy_and_the_calibration_error_join_the_metrics(tmp_path):
    labels = [f"c{i}" for i in range(7)]
    classifier = Classifier.from_pretrained(
        save_tiny_checkpoint(tmp_path / "ckpt", labels=labels, weight_std=0.3), dtype="float32"
    )
    data = tmp_path / "data"
    for i, label in enumerate(labels):
        (data / label).mkdir(parents=True)
        for k in range(3):
            noisy = np.random.default_rng(i * 10 + k).integers(0, 255, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(noisy).save(data / label / f"{k}.png")
    result = evaluate(classifier, data, tmp_path / "out")
    probs = classifier.predict_images([load_image(p) for p in sorted(data.glob("*/*.png"))])
    y_true = np.repeat(np.arange(7), 3)
    top5 = np.mean([y in np.argsort(-row)[:5] for row, y in zip(probs, y_true, strict=True)])
    assert result.metrics["top_5_accuracy"] == pytest.approx(top5)
    written = json.loads((tmp_path / "out/metrics.json").read_text())
    assert written["expected_calibration_error"] == pytest.approx(
        reliability(Task.MULTICLASS, probs, y_true).ece, abs=1e-6
    )


def test_calibrating_writes_a_copy_of_the_package_with_its_temperature(colour_folders, tmp_path):
    from deitkit.inference import load_packaged
    from deitkit.packaging import package_model

    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", labels=LABELS, weight_std=0.5)
    package = package_model(checkpoint, tmp_path / "package")
    before = {p: p.read_bytes() for p in package.rglob("*") if p.is_file()}
    classifier = load_packaged(package, engine="torch", dtype="fp32")

    result = evaluate(classifier, colour_folders, tmp_path / "out", calibrate=True, package=package)

    assert {p: p.read_bytes() for p in package.rglob("*") if p.is_file()} == before
    assert result.model == tmp_path / "out/mlflow_model"
    calibrated = load_packaged(result.model, engine="torch", dtype="fp32")
    assert calibrated.temperature == pytest.approx(result.temperature) != 1.0
    again = evaluate(calibrated, colour_folders, tmp_path / "again")
    assert again.metrics["expected_calibration_error"] == pytest.approx(
        result.metrics["expected_calibration_error"], abs=1e-4
    )
    before_ece = result.decisions.calibration.probs_before
    uncalibrated = reliability(Task.MULTICLASS, before_ece, _truth(colour_folders))
    assert result.metrics["expected_calibration_error"] < uncalibrated.ece


def _truth(data: Path) -> np.ndarray:
    """Class ids of a class-folder dataset, in the order evaluation reads it."""
    return targets(read_dataset(data, task=Task.MULTICLASS).examples, LABELS, Task.MULTICLASS)
