"""Package time: every engine judged against torch-fp32 on validation data, into engines.json."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import save_tiny_checkpoint, write_colour_folders

import deitkit.inference.engines.offers as offers_module
from deitkit.cli.package import package as package_command
from deitkit.data.formats import read_dataset
from deitkit.engine_decision import _judge, decide_engines
from deitkit.inference import load_packaged, packaged_checkpoint
from deitkit.inference.engines import ENGINES, read_record
from deitkit.tasks import Task

LABELS = ["blue", "green", "red"]


@pytest.fixture
def judged(judged_package):
    """tests/conftest.py's package: torch-int8 judged as where torch's int8 kernels are fast."""
    return judged_package


@pytest.mark.timeout(180)
def test_every_engine_is_judged_on_the_validation_set(judged):
    package, data = judged
    folder = packaged_checkpoint(package)
    assert {"model.onnx", "model.int8.onnx", "engines.json"} <= {p.name for p in folder.iterdir()}
    written = json.loads((folder / "engines.json").read_text())
    assert written["validation"] == {
        "data": str(data),
        "layout": "class-folders",
        "images": 24,
        "unreadable": 0,
        "primary_metric": "accuracy",
        "threshold": None,
    }
    assert written["export"]["onnx-fp32"]["shipped"] is True
    assert written["export"]["onnx-fp32"]["max_abs_logit_diff"] <= 1e-4
    engines = written["engines"]
    assert list(engines) == list(ENGINES)
    reference = engines["torch-fp32"]
    assert reference["allowed"] and reference["reason"] == "the reference"
    # onnx-fp32 gives torch's answers: same top-1 everywhere, same accuracy.
    assert engines["onnx-fp32"]["agreement"] == 1.0
    assert engines["onnx-fp32"]["metric"] == reference["metric"]
    assert engines["onnx-fp32"]["allowed"]
    for name in ("onnx-int8", "torch-int8"):
        verdict = engines[name]
        assert 0 <= verdict["agreement"] <= 1 and "metric" in verdict, name
        should = verdict["agreement"] >= 0.995 and verdict["metric_change_points"] >= -0.2
        assert verdict["allowed"] == should, verdict
        assert verdict["reason"].startswith(f"top-1 agreement {verdict['agreement']:.1%}")
    # This CPU has no native bf16: not judged, and allowed as it is without data.
    if not offers_module.native_bf16(torch.device("cpu")):
        assert engines["torch-bf16"]["allowed"]
        assert engines["torch-bf16"]["reason"].startswith("not judged where packaged (bf16 is")


def test_the_loader_and_the_pyfunc_read_the_same_record(judged):
    import mlflow

    package, _ = judged
    record = read_record(packaged_checkpoint(package))
    classifier = load_packaged(package, timer=lambda engine, pixels, give_up: 0.01)
    assert record.allowed(classifier.engine.name)
    pyfunc = mlflow.pyfunc.load_model(str(package)).unwrap_python_model()
    assert record.allowed(pyfunc.classifier.engine.name)


def test_without_validation_only_fp32_engines_and_bf16_are_allowed(judged, caplog):
    package, _ = judged
    folder = packaged_checkpoint(package)
    classifier = load_packaged(package, engine="torch", dtype="fp32")
    export = read_record(folder).export
    with caplog.at_level(logging.WARNING):
        record = decide_engines(classifier, folder, export=export)
    allowed = [name for name in ENGINES if record.allowed(name)]
    assert allowed == ["torch-fp32", "torch-bf16", "onnx-fp32"]
    assert record.verdicts["onnx-int8"].reason == "no validation set to judge it on"
    assert record.verdicts["onnx-fp32"].reason.startswith("no validation set; the export matches")
    assert "no validation set: only fp32 engines and bf16 may serve this model" in caplog.text


def classifier_like(task: Task, threshold: float = 0.5):
    return SimpleNamespace(task=task, labels=LABELS, threshold=threshold)


def test_a_candidate_that_changes_answers_or_loses_accuracy_is_refused():
    reference = np.eye(3, dtype=np.float32)[[0, 1, 2] * 100] * 0.7 + 0.1  # 300 images
    y_true = np.array([0, 1, 2] * 100)
    classifier = classifier_like(Task.MULTICLASS)
    same = _judge(classifier, reference, reference, y_true, 1.0)
    assert same.allowed and same.agreement == 1.0 and same.metric_change_points == 0.0
    assert same.reason == (
        "top-1 agreement 100.0%, accuracy 1.0000 (+0.00 points): within 99.5% agreement and "
        "0.2 points"
    )
    flipped = reference.copy()
    flipped[0] = flipped[0, ::-1]  # one image of 300 changes its answer: 99.67 % agreement
    one = _judge(classifier, flipped, reference, y_true, 1.0)
    assert not one.allowed and one.reason == (
        "top-1 agreement 99.7%, accuracy 0.9967 (-0.33 points): loses over 0.2 points"
    )
    flipped[1] = flipped[1, [1, 0, 2]]
    two = _judge(classifier, flipped, reference, y_true, 1.0)
    assert two.reason.endswith("agreement under 99.5% and loses over 0.2 points")


def test_multilabel_candidates_are_judged_label_by_label():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 1, (400, 3)).astype(np.float32)
    y_true = (reference >= 0.5).astype(np.int8)
    moved = reference.copy()
    close = np.flatnonzero(np.abs(reference[:, 2] - 0.5) < 0.1)[:3]
    moved[close, 2] = 1 - moved[close, 2]  # 3 of 400 'red' decisions flip: 99.25 %
    verdict = _judge(classifier_like(Task.MULTILABEL), moved, reference, y_true, 1.0)
    assert verdict.label_agreement == {"blue": 1.0, "green": 1.0, "red": 0.9925}
    assert not verdict.allowed
    assert verdict.reason.startswith("label 'red' decisions agree 99.2%, iou ")


def test_the_package_command_takes_validation_data(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", labels=LABELS)
    data = write_colour_folders(tmp_path / "colours")
    result = CliRunner().invoke(
        package_command,
        [
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(tmp_path / "pkg"),
            "--validation",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "  torch-fp32 allowed: the reference" in result.output
    assert (
        "  onnx-int8  refused: not available here: " in result.output
    )  # the suite's export is off
    record = read_record(packaged_checkpoint(tmp_path / "pkg"))
    assert record.validation["images"] == len(read_dataset(data))
    bad = CliRunner().invoke(
        package_command,
        [
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(tmp_path / "b"),
            "--validation",
            str(tmp_path),
        ],
    )
    assert bad.exit_code != 0 and not (tmp_path / "b").exists()
