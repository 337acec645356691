"""deitkit.report: one self-contained, escaped HTML file with every section that applies."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import report_samples as samples
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support

from deitkit import workdir
from deitkit.errors import DataError
from deitkit.report import Calibration, ReportData, ThresholdTuning, write_report
from deitkit.report import curves as report_curves
from deitkit.report import gallery as report_gallery
from deitkit.report import history as report_history
from deitkit.report.sections import MAX_ROWS

MULTICLASS_SECTIONS = [
    "metrics",
    "confusion",
    "per-class",
    "curves",
    "calibration",
    "confused-pairs",
    "mistakes",
]


class _Page(HTMLParser):
    """What the tests look at: section ids in order, img sources, elements with a class."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.classes: list[str] = []
        self.rows: dict[str, int] = {}
        self._section = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["id"]
            self.sections.append(attrs["id"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "tr":
            self.rows[self._section] = self.rows.get(self._section, 0) + 1
        if "class" in attrs:
            self.classes.append(attrs["class"])


def _section(text: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', text, re.DOTALL)
    assert found, f"no section {section_id}"
    return found.group(1)


@pytest.fixture(scope="module")
def multiclass_report(tmp_path_factory) -> tuple[ReportData, str]:
    folder = tmp_path_factory.mktemp("multiclass")
    data = samples.multiclass(folder / "images", calibrated=True, with_history=True)
    path = write_report(folder / "report.html", data)
    return data, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def multilabel_report(tmp_path_factory) -> tuple[ReportData, str]:
    folder = tmp_path_factory.mktemp("multilabel")
    data = samples.multilabel(folder / "images", tuned=True, calibrated=True)
    path = write_report(folder / "report.html", data)
    return data, path.read_text(encoding="utf-8")


def test_multiclass_sections_in_order_training_last(multiclass_report):
    _, text = multiclass_report
    assert _Page(text).sections == [*MULTICLASS_SECTIONS, "training"]


def test_multilabel_sections_have_thresholds_and_no_training(multilabel_report):
    _, text = multilabel_report
    assert _Page(text).sections == [*MULTICLASS_SECTIONS, "thresholds"]


def test_no_history_no_training_section(tmp_path):
    data = samples.multiclass(tmp_path / "images")
    text = write_report(tmp_path / "r.html", data).read_text(encoding="utf-8")
    assert _Page(text).sections == MULTICLASS_SECTIONS
    # An empty history has nothing to draw either.
    empty = dataclasses.replace(data, history=[])
    text = write_report(tmp_path / "r.html", empty).read_text(encoding="utf-8")
    assert "training" not in _Page(text).sections


@pytest.mark.parametrize("which", ["multiclass_report", "multilabel_report"])
def test_every_image_is_an_inline_picture_and_nothing_is_fetched(which, request):
    _, text = request.getfixturevalue(which)
    sources = _Page(text).images
    assert len(sources) >= 4  # confusion, curves, calibration, and thumbnails at least
    for source in sources:
        header, payload = source.split(",", 1)
        assert re.fullmatch(r"data:image/(png|jpeg|webp);base64", header), header
        with Image.open(BytesIO(base64.b64decode(payload, validate=True))) as picture:
            picture.load()
            assert picture.width > 0 and picture.height > 0
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    # Nothing in a tag points outside the page (anchors within it are fine).
    for attr in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert attr.startswith(("data:", "#")), attr


@pytest.mark.parametrize("which", ["multiclass_report", "multilabel_report"])
def test_user_strings_are_escaped(which, request):
    _, text = request.getfixturevalue(which)
    assert samples.TRICKY_LABEL not in text
    assert "a&lt;b&amp;&quot;c&quot;" in text
    assert samples.TRICKY_NAME not in text
    assert "onerror=alert" not in text.replace("&lt;img src=x onerror=alert", "")
    if which == "multiclass_report":
        assert "tiny &lt;model&gt; &amp; a&lt;b" in text  # the title
        assert "valid &lt;split&gt;" in text  # a fact


def test_metrics_table_primary_first_nan_as_na(tmp_path):
    data = samples.multiclass(tmp_path / "images", classes=7)
    metrics = dict(data.metrics)
    metrics["AUC_macro"] = float("nan")
    data = dataclasses.replace(data, metrics=metrics)
    text = write_report(tmp_path / "r.html", data).read_text(encoding="utf-8")
    table = _section(text, "metrics")
    names = re.findall(r'<td class="name">([^<]*)</td>', table)
    assert names[:2] == ["accuracy", "top_5_accuracy"]
    assert set(names) == set(metrics)
    assert re.search(r"AUC_macro</td><td>n/a</td>", table)
    assert '<tr class="primary"><td class="name">accuracy</td>' in table


def test_facts_are_listed_under_the_title(multiclass_report):
    _, text = multiclass_report
    header = text.split("<main>")[0]
    assert "<b>data:</b> valid &lt;split&gt;" in header
    assert "<b>images:</b> 40" in header


def test_per_class_table_uses_each_labels_threshold(multilabel_report):
    data, text = multilabel_report
    predicted = np.asarray(data.probs) >= np.asarray(data.thresholds)
    precision, recall, f1, support = precision_recall_fscore_support(
        data.y_true, predicted, average=None, zero_division=0
    )
    table = _section(text, "per-class")
    rows = re.findall(r"<tr><td class=\"name\">[^<]*</td>((?:<td>[^<]*</td>)+)</tr>", table)
    assert len(rows) == len(data.labels)
    for i, row in enumerate(rows):
        cells = re.findall(r"<td>([^<]*)</td>", row)
        assert cells[0] == f"{data.thresholds[i]:.3f}"
        assert cells[1:5] == [
            f"{precision[i]:.4f}",
            f"{recall[i]:.4f}",
            f"{f1[i]:.4f}",
            str(support[i]),
        ]


def test_curves_caption_names_labels_without_both_outcomes(multilabel_report):
    data, text = multilabel_report
    caption = _section(text, "curves")
    assert "Skipped" in caption and data.labels[-1] in caption


def test_curves_are_capped_at_the_worst_classes():
    truth = np.eye(12, dtype=np.int8)[np.arange(120) % 12]
    probs = truth * 0.5
    for label in range(12):
        # Label k ranks k negatives above its positives: the AUC falls as k grows.
        negatives = np.flatnonzero(truth[:, label] == 0)[:label]
        probs[negatives, label] = 0.9
    truth[:, 11] = 0  # no positives
    choice = report_curves.choose(truth, probs, cap=4)
    assert choice.capped and choice.drawable == 11 and choice.skipped == (11,)
    assert choice.drawn == (7, 8, 9, 10)
    assert "4 of 11" in report_curves.caption(choice, [str(i) for i in range(12)])


def test_calibration_shows_ece_before_and_after_and_the_temperature(multiclass_report):
    _, text = multiclass_report
    section = _section(text, "calibration")
    assert re.search(r"ECE \d\.\d{4} → \d\.\d{4} with temperature 2\.0000", section)
    assert section.count("<img") == 1  # one figure, two panels


def test_calibration_without_fit_shows_one_ece(tmp_path):
    data = samples.multiclass(tmp_path / "images")
    section = _section(write_report(tmp_path / "r.html", data).read_text(), "calibration")
    assert re.search(r"Expected calibration error \(ECE\): \d\.\d{4}\.", section)
    assert "temperature" not in section.split("<img")[0]


def test_confused_pairs_are_the_largest_off_diagonal_cells(multiclass_report):
    data, text = multiclass_report
    predicted = np.asarray(data.probs).argmax(axis=1)
    counts = np.zeros((len(data.labels),) * 2, dtype=int)
    np.add.at(counts, (data.y_true, predicted), 1)
    np.fill_diagonal(counts, 0)
    section = _section(text, "confused-pairs")
    first = re.search(r"<tbody><tr>((?:<td[^>]*>[^<]*</td>)+)</tr>", section).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", first)
    assert int(cells[2]) == counts.max()
    rows = re.findall(r"<tr><td", section)
    assert len(rows) == min(10, int((counts > 0).sum()))


def test_multilabel_confused_section_lists_missed_and_false_labels(multilabel_report):
    section = _section(multilabel_report[1], "confused-pairs")
    assert "Most often missed" in section and "Most often falsely predicted" in section


def test_gallery_captions_name_image_truth_prediction_and_score(multiclass_report):
    data, text = multiclass_report
    section = _section(text, "mistakes")
    figures = re.findall(r'<figure class="mistake">(.*?)</figure>', section, re.DOTALL)
    wrong = int((np.asarray(data.probs).argmax(axis=1) != data.y_true).sum())
    assert len(figures) == min(24, wrong) > 0
    for figure in figures:
        assert "true: " in figure and "predicted: " in figure and "score 0." in figure
    # Worst first: scores never increase along the gallery.
    scores = [float(s) for s in re.findall(r"score (\d\.\d+)", section)]
    assert scores == sorted(scores, reverse=True)


def test_unreadable_images_get_a_captioned_placeholder(tmp_path):
    data = samples.multiclass(tmp_path / "images")
    wrong = np.flatnonzero(np.asarray(data.probs).argmax(axis=1) != data.y_true)
    assert len(wrong) >= 3
    data.images[wrong[0]].write_bytes(b"not an image at all")
    data.images[wrong[1]].unlink()
    text = write_report(tmp_path / "r.html", data).read_text(encoding="utf-8")
    section = _section(text, "mistakes")
    placeholders = section.count('<div class="placeholder"')
    thumbnails = section.count("<img")
    assert placeholders == 2 and thumbnails == len(wrong) - 2
    assert placeholders + thumbnails == section.count('<figure class="mistake">')
    assert "image could not be opened" in section


def test_no_mistakes_says_so(tmp_path):
    data = samples.multiclass(tmp_path / "images")
    perfect = np.eye(len(data.labels))[data.y_true] * 0.9 + 0.1 / len(data.labels)
    data = dataclasses.replace(data, probs=perfect)
    text = write_report(tmp_path / "r.html", data).read_text(encoding="utf-8")
    assert "Every image was predicted correctly." in _section(text, "mistakes")
    assert "No image was misclassified." in _section(text, "confused-pairs")


def test_thresholds_section_shows_tuning_and_macro_f1(multilabel_report):
    data, text = multilabel_report
    section = _section(text, "thresholds")
    before, after = np.mean(data.tuning.f1_before), np.mean(data.tuning.f1_after)
    assert f"macro F1 {before:.4f} → {after:.4f}" in section
    assert section.count("<tr>") == len(data.labels) + 1


def test_thresholds_section_without_tuning_lists_thresholds(tmp_path):
    data = samples.multilabel(tmp_path / "images")
    section = _section(write_report(tmp_path / "r.html", data).read_text(), "thresholds")
    assert section.count("<td>0.500</td>") == len(data.labels)


def test_training_section_draws_losses_and_the_primary_metric(multiclass_report):
    _, text = multiclass_report
    section = _section(text, "training")
    assert section.count("<img") == 1
    assert "training loss, evaluation loss, eval_accuracy" in section


def test_history_reads_what_exists():
    history = samples.history()
    losses, metric = report_history.read(history, "iou")
    assert [s.name for s in losses] == ["training loss", "evaluation loss"]
    assert metric.name == "eval_iou" and metric.x == (1.0, 2.0, 3.0)
    # Only evaluations, no epochs: plotted against steps, with the first score there is.
    losses, metric = report_history.read([{"eval_f1": 0.5, "step": 3}], "accuracy")
    assert losses == [] and metric.name == "eval_f1" and metric.x_name == "step"
    assert report_history.read([{"foo": 1}], "accuracy") == ([], None)


def test_history_without_curves_says_so(tmp_path):
    data = samples.multiclass(tmp_path / "images")
    data = dataclasses.replace(data, history=[{"train_runtime": 1.0}])
    section = _section(write_report(tmp_path / "r.html", data).read_text(), "training")
    assert "holds no loss or evaluation metric" in section and "<img" not in section


@pytest.mark.slow
def test_a_hundred_labels_render_small(tmp_path):
    data = samples.multiclass(tmp_path / "images", n=300, classes=100)
    path = write_report(tmp_path / "r.html", data)
    text = path.read_text(encoding="utf-8")
    page = _Page(text)
    assert page.sections == MULTICLASS_SECTIONS
    assert path.stat().st_size < 1_000_000
    assert page.rows["per-class"] == MAX_ROWS + 1  # the header row, then the capped rows
    assert "Showing the 10 of" in _section(text, "curves")


def test_many_multilabel_labels_cap_rows_and_grid(tmp_path):
    data = samples.multilabel(tmp_path / "images", n=20, classes=120, tuned=True)
    path = write_report(tmp_path / "r.html", data)
    text = path.read_text(encoding="utf-8")
    assert "The first 64 of 120 labels" in _section(text, "confusion")
    assert f"The {MAX_ROWS} of 120 labels whose F1 changed most" in _section(text, "thresholds")
    assert path.stat().st_size < 1_000_000


def test_written_atomically_replacing_an_earlier_report(tmp_path, monkeypatch):
    data = samples.multiclass(tmp_path / "images")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("old")
    renames = []

    def replace(source, target):
        # The whole page is in the staging file, beside the target, before the rename.
        assert Path(source).read_text(encoding="utf-8").endswith("</html>\n")
        renames.append((Path(source), Path(target)))
        return os.rename(source, target)

    monkeypatch.setattr(workdir.os, "replace", replace)
    assert write_report(out / "report.html", data) == out / "report.html"
    [(source, target)] = renames
    assert source.parent == target.parent == out and source != target
    assert [p.name for p in out.iterdir()] == ["report.html"]
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_failed_render_leaves_the_earlier_report_and_no_temp_file(tmp_path):
    data = samples.multiclass(tmp_path / "images")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("old")
    broken = dataclasses.replace(data, image_names=data.image_names[:-1])
    with pytest.raises(DataError, match="image names"):
        write_report(out / "report.html", broken)
    assert [p.name for p in out.iterdir()] == ["report.html"]
    assert (out / "report.html").read_text() == "old"


def test_write_report_makes_the_folder(tmp_path):
    data = samples.multiclass(tmp_path / "images", n=10)
    assert write_report(tmp_path / "a" / "b" / "r.html", data).is_file()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: {"thresholds": (0.5,)}, "thresholds for"),
        (lambda d: {"probs": np.asarray(d.probs)[:, :2]}, "probs has shape"),
        (lambda d: {"calibration": Calibration(1.0, np.asarray(d.probs)[:3])}, "calibration"),
        (
            lambda d: {"tuning": ThresholdTuning((0.5,), (0.5,), (0.1,), (0.2,))},
            "one value per label",
        ),
    ],
)
def test_inconsistent_data_is_refused(tmp_path, change, match):
    data = samples.multilabel(tmp_path / "images", n=8)
    with pytest.raises(DataError, match=match):
        write_report(tmp_path / "r.html", dataclasses.replace(data, **change(data)))


def test_quickstart_sized_report_is_small(tmp_path):
    """10 classes, 360 images of 8x8 pixels shown at 64 px: the quickstart's digits."""
    data = samples.multiclass(
        tmp_path / "images", n=360, classes=10, side=8, upscale=8, with_history=True
    )
    path = write_report(tmp_path / "r.html", data)
    assert path.stat().st_size < 1_000_000


def test_thumbnails_are_small_and_keep_the_smaller_encoding(tmp_path):
    rng = np.random.default_rng(3)
    gradient = np.linspace(0, 255, 600)[None, :, None] * np.ones((400, 1, 3))
    photo = np.clip(gradient + rng.normal(0, 20, (400, 600, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=95)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "flat.png")
    big = report_gallery.thumbnail(tmp_path / "photo.jpg")
    flat = report_gallery.thumbnail(tmp_path / "flat.png")
    assert big.mime == "image/jpeg" and flat.mime == "image/png"
    with Image.open(BytesIO(big.data)) as picture:
        assert max(picture.size) == report_gallery.THUMBNAIL_SIDE
    assert len(big.data) < 12_000
