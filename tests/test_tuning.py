"""Thresholds tuned and temperatures fitted on validation data, packaged, and served."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from helpers import save_tiny_checkpoint

from deitkit.calibration import reliability
from deitkit.data.digits import write_digits_multilabel
from deitkit.errors import ConfigError
from deitkit.evaluation import evaluate
from deitkit.inference import load_packaged
from deitkit.quickstart import post_json
from deitkit.serving.server import LocalServer
from deitkit.tasks import Task
from deitkit.thresholds import f1_at, tune_thresholds
from deitkit.training.config import FinetuneConfig
from deitkit.training.run import finetune
from deitkit.tuning import decide

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")
DIGITS = [str(d) for d in range(10)]


def test_tuned_thresholds_never_lose_f1_and_keep_one_half_without_evidence():
    rng = np.random.default_rng(0)
    truth = (rng.random((200, 3)) < 0.3).astype(int)
    truth[:, 2] = 0  # a label never present: no evidence to move its threshold
    probs = np.clip(0.35 * truth + rng.random((200, 3)) * 0.55, 0, 1)
    tuned = tune_thresholds(probs, truth, ["a", "b", "c"])
    assert tuned[2] == 0.5
    for column in range(2):
        before = f1_at(probs[:, column], truth[:, column], 0.5)
        assert f1_at(probs[:, column], truth[:, column], tuned[column]) > before


def test_calibration_lowers_the_ece_of_an_over_confident_model():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), y] += 1.0
    logits *= 6  # right about half the time, and almost always near-certain
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)

    decisions = decide(
        Task.MULTICLASS, list("abcd"), probs, y, thresholds=(0.5,) * 4, calibrate=True
    )

    before = reliability(Task.MULTICLASS, probs, y).ece
    after = reliability(Task.MULTICLASS, decisions.probs, y).ece
    assert decisions.temperature > 2 and after < before / 2, (before, after)
    assert (decisions.probs.argmax(1) == probs.argmax(1)).all()  # the answers do not change


def test_thresholds_are_refused_for_a_multiclass_model():
    with pytest.raises(ConfigError, match="--tune-thresholds applies to multilabel models"):
        decide(Task.MULTICLASS, ["a", "b"], np.eye(2), np.arange(2), thresholds=(0.5, 0.5),
               tune_thresholds=True)  # fmt: skip


@pytest.mark.slow
def test_thresholds_tuned_on_the_digits_raise_f1_and_the_server_uses_them(tmp_path, monkeypatch):
    """The acceptance: on the digits multilabel sample, per-label thresholds tuned by
    `deitkit finetune --tune-thresholds` raise validation macro F1 over one 0.5 threshold, the
    package carries them, and the real server answers with them."""
    # One engine throughout (finetune's evaluation, this test's, the server): chosen by timing,
    # a busy machine could pick another, whose last-digit differences move a label across its
    # threshold.
    monkeypatch.setenv("DEITKIT_INFERENCE_ENGINE", "torch")
    monkeypatch.setenv("DEITKIT_INFERENCE_DTYPE", "fp32")
    data = write_digits_multilabel(tmp_path / "digits", size=32, count=240, seed=3)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny", labels=DIGITS, image_size=32)
    config = FinetuneConfig(
        model=str(checkpoint), train=str(data), output=str(tmp_path / "out"),
        task=Task.MULTILABEL, epochs=3, train_batch_size=16, learning_rate=2e-3,
        augmentations=False, tune_thresholds=True,
    )  # fmt: skip
    result = finetune(config)

    package = result.mlflow_model_dir
    classifier = load_packaged(package, engine="torch", dtype="fp32")
    assert classifier.thresholds is not None and len(set(classifier.thresholds)) > 1
    report = result.output_dir / "evaluation" / "report.html"
    assert report.is_file() and 'id="thresholds"' in report.read_text(encoding="utf-8")

    validation = result.output_dir / "evaluation" / "artifacts" / "predictions.csv"
    names = pd.read_csv(validation)["file_name"].tolist()
    at_half = evaluate(classifier, _subset(data, names, tmp_path / "val"), tmp_path / "half",
                       threshold=0.5)  # fmt: skip
    tuned = evaluate(classifier, tmp_path / "val", tmp_path / "tuned")
    assert tuned.metrics["f1_score_macro"] > at_half.metrics["f1_score_macro"]
    assert result.metrics["served_f1_score_macro"] == pytest.approx(tuned.metrics["f1_score_macro"])

    # The server answers with the tuned thresholds; a request's threshold overrides them.
    predictions = pd.read_csv(tmp_path / "tuned/artifacts/predictions.csv")
    probs = np.array([json.loads(p) for p in predictions["probs"]])
    differs = [
        i for i, row in enumerate(probs)
        if (row >= np.array(classifier.thresholds)).tolist() != (row >= 0.5).tolist()
    ]  # fmt: skip
    assert differs, "the tuned thresholds change no answer on the validation set"
    chosen = differs[:4]
    images = [
        base64.b64encode((tmp_path / "val" / predictions["file_name"][i]).read_bytes()).decode()
        for i in chosen
    ]
    # MLflow's split form: its answer carries `predicted` beside probs and labels.
    body = {"dataframe_split": {"columns": ["image"], "data": [[image] for image in images]}}
    with LocalServer(package) as server:
        tuned_answer = post_json(server.url + "/score", body)["predictions"]
        half = {**body, "params": {"threshold": 0.5}}
        half_answer = post_json(server.url + "/score", half)["predictions"]
    for row, answer, half in zip(chosen, tuned_answer, half_answer, strict=True):
        served = np.array(answer["probs"])
        assert set(answer["predicted"]) == {
            label for label, p, t in zip(DIGITS, served, classifier.thresholds, strict=True)
            if p >= t
        }  # fmt: skip
        assert set(half["predicted"]) == {
            d for d, p in zip(DIGITS, served, strict=True) if p >= 0.5
        }
        assert set(answer["predicted"]) == set(json.loads(predictions["predicted"][row]))


def _subset(data, names, out):
    """The validation images (named in predictions.csv) as their own multilabel folder."""
    (out / "images").mkdir(parents=True)
    labels = pd.read_csv(data / "labels.csv").set_index("filename")["labels"]
    rows = ["filename,labels"]
    for name in names:
        file = name.removeprefix("images/")
        (out / "images" / file).write_bytes((data / "images" / file).read_bytes())
        rows.append(f"{file},{labels[file]}")
    (out / "labels.csv").write_text("\n".join(rows) + "\n")
    return out
