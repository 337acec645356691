"""The Classifier: probabilities, labels, batching, input decoding and threads."""

from __future__ import annotations

import base64
import io
import json
import os
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
