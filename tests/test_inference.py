"""The Classifier: probabilities, labels, batching, input decoding and threads."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_tiny_checkpoint
from PIL import Image
from transformers import AutoModelForImageClassification

import deitkit.inference.threads as threads_module
from deitkit.errors import ConfigError, ImageError
from deitkit.images import ImageLimits, load_image
from deitkit.inference import (
    Classifier,
    Prediction,
    check_threshold,
    check_top_k,
    load_classifier,
    read_checkpoint,
)
from deitkit.inference.threads import _cgroup_quota
from deitkit.tasks import Task

LABELS = ["blue", "green", "red"]


def set_config(folder: Path, **fields) -> Path:
    """Edit config.json fields of a saved checkpoint."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(fields)
    path.write_text(json.dumps(config))
    return folder


def colour_images(root: Path) -> list[Image.Image]:
    return [load_image(path) for path in sorted(root.rglob("*.png"))]


def png_base64(colour=(200, 20, 20), size=(20, 20)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def hf_probs(folder: Path, images: list[Image.Image], classifier: Classifier, multilabel: bool):
    """Probabilities from a plain transformers forward on the same preprocessed tensor."""
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(pixel_values=classifier.transform(images)).logits
    return (logits.sigmoid() if multilabel else logits.softmax(-1)).numpy()


@pytest.mark.parametrize("model_type", ["deit", "vit", "beit"])
def test_multiclass_probabilities_match_a_direct_forward(
    model_type, tiny_checkpoint, colour_folders
):
    folder = tiny_checkpoint(model_type, labels=LABELS)
    classifier = Classifier.from_pretrained(folder, dtype="float32")
    images = colour_images(colour_folders)

    probs = classifier.predict_images(images)

    assert probs.shape == (24, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, hf_probs(folder, images, classifier, False), atol=1e-6)
    assert classifier.labels == LABELS and classifier.task is Task.MULTICLASS
    assert classifier.threshold == 0.5 and classifier.precision.name == "fp32"


def test_multilabel_probabilities_are_independent_sigmoids(tiny_checkpoint, colour_multilabel):
    folder = set_config(
        tiny_checkpoint("deit", labels=LABELS), problem_type="multi_label_classification"
    )
    classifier = Classifier.from_pretrained(folder, dtype="float32")
    images = [load_image(p) for p in sorted((colour_multilabel / "images").glob("*.png"))]

    probs = classifier.predict_images(images)

    assert classifier.task is Task.MULTILABEL
    assert ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs, hf_probs(folder, images, classifier, True), atol=1e-6)


def test_distilled_deit_averages_its_two_heads(tiny_checkpoint, colour_folders):
    folder = tiny_checkpoint("deit", labels=LABELS, distilled=True)
    classifier = Classifier.from_pretrained(folder, dtype="float32")
    images = colour_images(colour_folders)[:4]
    np.testing.assert_allclose(
        classifier.predict_images(images), hf_probs(folder, images, classifier, False), atol=1e-6
    )


def test_batches_are_split_without_changing_results(tiny_checkpoint, colour_folders):
    folder = tiny_checkpoint("deit", labels=LABELS)
    images = colour_images(colour_folders)[:7]
    whole = Classifier.from_pretrained(folder, dtype="float32").predict_images(images)
    split = Classifier.from_pretrained(folder, dtype="float32", max_batch_size=3)

    np.testing.assert_allclose(split.predict_images(images), whole, atol=1e-6)
    assert split.predict_images([]).shape == (0, 3)


def test_non_rgb_images_are_refused_by_index(tiny_checkpoint):
    classifier = Classifier.from_pretrained(tiny_checkpoint("deit"), dtype="float32")
    rgb = Image.new("RGB", (8, 8))
    with pytest.raises(ImageError, match=r"^image 1: expected an RGB PIL image, got L"):
        classifier.predict_images([rgb, Image.new("L", (8, 8))])


def test_prediction_top_k_and_predicted_follow_the_task():
    multiclass = Prediction([0.2, 0.5, 0.3], LABELS, Task.MULTICLASS)
    assert multiclass.top_k(2) == [("green", 0.5), ("red", 0.3)]
    assert multiclass.top_k() == [("green", 0.5), ("red", 0.3), ("blue", 0.2)]
    assert multiclass.predicted() == ["green"]
    assert multiclass.predicted(threshold=0.9) == ["green"]  # threshold is multilabel-only
    assert multiclass.predicted(top_k=2) == ["green", "red"]

    multilabel = Prediction([0.7, 0.1, 0.9], LABELS, Task.MULTILABEL, threshold=0.5)
    assert multilabel.predicted() == ["red", "blue"]
    assert multilabel.predicted(threshold=0.8) == ["red"]
    assert multilabel.predicted(threshold=0.05, top_k=2) == ["red", "blue"]
    assert multilabel.predicted(threshold=0.95) == []
    assert multilabel.to_dict() == {"probs": [0.7, 0.1, 0.9], "labels": LABELS}


def test_ties_keep_label_order():
    assert Prediction([0.25, 0.5, 0.25], LABELS, Task.MULTICLASS).top_k() == [
        ("green", 0.5),
        ("blue", 0.25),
        ("red", 0.25),
    ]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_thresholds_are_refused(bad):
    with pytest.raises(ConfigError, match="threshold must be a number in"):
        check_threshold(bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_top_k_is_refused(bad):
    with pytest.raises(ConfigError, match="top_k must be an integer >= 1"):
        check_top_k(bad)


def test_numpy_params_are_accepted():
    assert check_top_k(np.int64(2)) == 2
    assert check_threshold(np.float32(0.25)) == 0.25


def test_checkpoint_metadata_is_read_and_checked(tiny_checkpoint):
    folder = tiny_checkpoint("deit", labels=LABELS)
    (folder / "deitkit.json").write_text(json.dumps({"labels": LABELS, "threshold": 0.3}))
    info = read_checkpoint(folder)
    assert info.labels == tuple(LABELS) and info.threshold == 0.3

    (folder / "deitkit.json").write_text(json.dumps({"labels": ["x", "y", "z"]}))
    with pytest.raises(ConfigError, match=r"deitkit.json: labels \['x', 'y', 'z'\] differ"):
        read_checkpoint(folder)

    (folder / "deitkit.json").unlink()
    set_config(folder, problem_type="regression")
    with pytest.raises(ConfigError, match="problem_type 'regression' is not an image classif"):
        read_checkpoint(folder)


def test_a_folder_that_is_no_model_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected a packaged model folder"):
        load_classifier(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_classifier(tmp_path / "missing")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Classifier:
    folder = tmp_path_factory.mktemp("ckpt")
    return Classifier.from_pretrained(save_tiny_checkpoint(folder, labels=LABELS), dtype="float32")


def test_base64_inputs_decode_and_predict(classifier):
    predictions = classifier.predict_inputs([png_base64(), "data:image/png;base64," + png_base64()])
    assert len(predictions) == 2 and predictions[0].probs == pytest.approx(predictions[1].probs)


def test_decoding_errors_name_the_image_index(classifier):
    with pytest.raises(ImageError, match=r"^image 1: the text is not valid base64"):
        classifier.decode_inputs([png_base64(), "not*base64"])
    with pytest.raises(ImageError, match=r"^image 0: expected a string .* got NoneType"):
        classifier.decode_inputs([None])
    with pytest.raises(ImageError, match=r"^image 0: file:// URLs are not supported"):
        classifier.decode_inputs(["file:///etc/passwd"])


def test_url_inputs_need_a_fetcher(classifier, monkeypatch):
    with pytest.raises(ImageError, match=r"^image 0: URL inputs are not enabled here"):
        classifier.decode_inputs(["https://example.com/cat.png"])

    fetched = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        if "private" in url:
            raise ImageError("refused: 10.0.0.1 is a private address", source=url)
        return base64.b64decode(png_base64(size=(12, 9)))

    monkeypatch.setattr(classifier, "fetch_url", fetch)
    # Reduced at once to the tiny model's resize size (16 px / 0.875 = 18).
    assert classifier.decode_inputs(["HTTPS://example.com/a.png"])[0].size == (18, 18)
    assert fetched == ["HTTPS://example.com/a.png"]
    with pytest.raises(ImageError, match=r"^image 2: refused: 10.0.0.1 is a private address$"):
        classifier.decode_inputs([png_base64(), png_base64(), "http://private.example/x.png"])


def test_image_limits_apply_to_inputs(classifier, monkeypatch):
    monkeypatch.setattr(classifier, "limits", ImageLimits(max_pixels=100))
    with pytest.raises(ImageError, match=r"^image 0: the image is 20x20 \(400 pixels\)"):
        classifier.decode_inputs([png_base64()])


# --- threads ------------------------------------------------------------------------------


def test_threads_are_set_once_unless_omp_num_threads_is_set(monkeypatch):
    calls = []
    monkeypatch.setattr(threads_module.torch, "set_num_threads", calls.append)
    monkeypatch.setattr(threads_module, "inference_threads", lambda: 3)

    monkeypatch.setattr(threads_module, "_configured", False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads_module.configure_threads()
    assert calls == []

    monkeypatch.setattr(threads_module, "_configured", False)
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads_module.configure_threads()
    threads_module.configure_threads()
    assert calls == [3]


def test_thread_count_respects_cgroup_quotas(tmp_path):
    assert 1 <= threads_module.inference_threads() <= len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert _cgroup_quota(tmp_path) == 3
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _cgroup_quota(tmp_path) == 1


# --- decisions: per-label thresholds and the calibration temperature -----------------------


def write_deitkit_json(folder: Path, **fields) -> Path:
    (folder / "deitkit.json").write_text(json.dumps({"labels": LABELS, **fields}))
    return folder


@pytest.fixture
def multilabel_checkpoint(tiny_checkpoint) -> Path:
    folder = tiny_checkpoint("deit", labels=LABELS, weight_std=0.3)
    return set_config(folder, problem_type="multi_label_classification")


def test_deitkit_json_carries_per_label_thresholds_and_a_temperature(multilabel_checkpoint):
    write_deitkit_json(
        multilabel_checkpoint, thresholds={"red": 0.9, "blue": 0.2, "green": 0.5}, temperature=2
    )
    info = read_checkpoint(multilabel_checkpoint)
    assert info.thresholds == (0.2, 0.5, 0.9) and info.temperature == 2.0  # in label order

    classifier = Classifier.from_pretrained(multilabel_checkpoint, dtype="float32")
    assert classifier.thresholds == (0.2, 0.5, 0.9) and classifier.temperature == 2.0
    assert classifier.label_thresholds() == (0.2, 0.5, 0.9)
    assert classifier.label_thresholds(0.3) == (0.3, 0.3, 0.3)
    # An explicit threshold (deitkit predict/batch-score/evaluate --threshold) decides every label.
    overridden = Classifier.from_pretrained(multilabel_checkpoint, dtype="float32", threshold=0.4)
    assert overridden.thresholds is None and overridden.label_thresholds() == (0.4, 0.4, 0.4)
    given = Classifier.from_pretrained(
        multilabel_checkpoint, dtype="float32", thresholds=[0.1, 0.2, 0.3], temperature=1.0
    )
    assert given.thresholds == (0.1, 0.2, 0.3) and given.temperature == 1.0


def test_a_checkpoint_without_them_keeps_todays_defaults(multilabel_checkpoint):
    info = read_checkpoint(multilabel_checkpoint)
    assert info.thresholds is None and info.temperature == 1.0
    write_deitkit_json(multilabel_checkpoint, thresholds=None, temperature=None)
    assert read_checkpoint(multilabel_checkpoint).temperature == 1.0


BAD_DECISIONS = [
    ({"thresholds": [0.1, 0.2, 0.3]}, "thresholds must be a JSON object of label -> number"),
    ({"thresholds": {"blue": 0.1, "green": 0.2}}, r"name exactly .*; missing \['red'\]"),
    (
        {"thresholds": {"blue": 0.1, "green": 0.2, "red": 0.3, "pink": 0.4}},
        r"unknown \['pink'\]",
    ),
    (
        {"thresholds": {"blue": 0.1, "green": 1.5, "red": 0.3}},
        r"thresholds\['green'\] must be a number in \[0, 1\], got 1.5",
    ),
    ({"thresholds": {"blue": 0.1, "green": "0.2", "red": 0.3}}, r"thresholds\['green'\] must be"),
    ({"temperature": 0}, "temperature must be a finite number > 0, got 0"),
    ({"temperature": -2.0}, "temperature must be a finite number > 0, got -2.0"),
    ({"temperature": "2"}, "temperature must be a finite number > 0, got '2'"),
    ({"temperature": True}, "temperature must be a finite number > 0, got True"),
]


@pytest.mark.parametrize("fields, message", BAD_DECISIONS)
def test_bad_decisions_in_deitkit_json_are_refused_naming_the_file_and_key(
    multilabel_checkpoint, fields, message
):
    write_deitkit_json(multilabel_checkpoint, **fields)
    with pytest.raises(ConfigError) as caught:
        read_checkpoint(multilabel_checkpoint)
    text = str(caught.value)
    assert text.startswith(f"{multilabel_checkpoint / 'deitkit.json'}: ") and "\n" not in text
    assert re.search(message, text), text


def test_per_label_thresholds_are_refused_for_a_multiclass_model(tiny_checkpoint):
    folder = write_deitkit_json(
        tiny_checkpoint("deit", labels=LABELS), thresholds=dict.fromkeys(LABELS, 0.5)
    )
    with pytest.raises(ConfigError, match=r"deitkit.json: thresholds: per-label thresholds are "):
        read_checkpoint(folder)
    (folder / "deitkit.json").unlink()
    classifier = Classifier.from_pretrained(folder, dtype="float32")
    with pytest.raises(ConfigError, match="thresholds: per-label thresholds are for multilabel"):
        classifier.with_decisions(thresholds=[0.5, 0.5, 0.5])


@pytest.mark.parametrize("multilabel", [False, True], ids=["softmax", "sigmoid"])
def test_a_temperature_scales_the_logits_before_the_activation(
    tiny_checkpoint, colour_folders, multilabel
):
    from deitkit.calibration import apply_temperature, logits_from_probs

    folder = tiny_checkpoint("deit", labels=LABELS, weight_std=0.3)
    if multilabel:
        set_config(folder, problem_type="multi_label_classification")
    classifier = Classifier.from_pretrained(folder, dtype="float32")
    images = colour_images(colour_folders)[:6]
    plain = classifier.predict_images(images)

    # T = 1 is today's output bit for bit: the activation of the engine's logits, undivided.
    pixels = classifier.transform(images)
    undivided = classifier.task.activate(classifier.engine(pixels))
    assert torch.equal(classifier.forward(pixels), undivided)
    assert np.array_equal(classifier.with_decisions(temperature=1.0).predict_images(images), plain)

    hot = classifier.with_decisions(temperature=2.5)
    scaled = hot.predict_images(images)
    expected = apply_temperature(classifier.task, logits_from_probs(classifier.task, plain), 2.5)
    np.testing.assert_allclose(scaled, expected, atol=1e-5)
    assert not np.allclose(scaled, plain, atol=1e-3)
    assert classifier.temperature == 1.0  # with_decisions returns a copy
    write_deitkit_json(folder, temperature=2.5)
    np.testing.assert_array_equal(
        Classifier.from_pretrained(folder, dtype="float32").predict_images(images), scaled
    )


def test_per_label_thresholds_decide_label_by_label_and_a_threshold_overrides_them():
    prediction = Prediction([0.7, 0.1, 0.45], LABELS, Task.MULTILABEL, 0.5, (0.8, 0.05, 0.4))
    assert prediction.predicted() == ["red", "green"]  # blue 0.7 < 0.8; green, red over theirs
    assert Prediction([0.7, 0.1, 0.45], LABELS, Task.MULTILABEL, 0.5).predicted() == ["blue"]
    assert prediction.predicted(threshold=0.5) == ["blue"]  # the request's, for every label
    assert prediction.predicted(top_k=1) == ["red"]
    with pytest.raises(ConfigError, match=r"one threshold per label \(3\), got 2"):
        Prediction([0.7, 0.1, 0.45], LABELS, Task.MULTILABEL, 0.5, (0.8, 0.05))


def test_classifier_predictions_carry_its_thresholds(multilabel_checkpoint, colour_folders):
    classifier = Classifier.from_pretrained(multilabel_checkpoint, dtype="float32")
    images = colour_images(colour_folders)[:4]
    probs = classifier.predict_images(images)
    # Each label's threshold just past its first-image probability, on the other side of 0.5.
    thresholds = [p - 0.01 if p < 0.5 else min(p + 0.01, 1.0) for p in probs[0]]
    tuned = classifier.with_decisions(thresholds=dict(zip(LABELS, thresholds, strict=True)))
    first = tuned.predictions(probs)[0]
    assert first.thresholds == tuple(thresholds)
    under = {label for label, p in zip(LABELS, probs[0], strict=True) if p < 0.5}
    assert set(first.predicted()) == under
    assert set(first.predicted(threshold=0.5)) == set(LABELS) - under
    assert classifier.predictions(probs)[0].predicted() == first.predicted(threshold=0.5)
    assert tuned.with_decisions(thresholds=None).thresholds is None
    with pytest.raises(ConfigError, match=r"thresholds\['red'\] must be a number in \[0, 1\]"):
        classifier.with_decisions(thresholds={"blue": 0.5, "green": 0.5, "red": -1})
    with pytest.raises(ConfigError, match="temperature must be a finite number > 0"):
        classifier.with_decisions(temperature=float("inf"))
