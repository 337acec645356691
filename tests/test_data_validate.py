"""Tests for deitkit.data.validate: decoding every image, the report, train/validation checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from deitkit.data.formats import read_dataset
from deitkit.data.validate import check_compatible, validate_dataset
from deitkit.errors import DataError
from deitkit.tasks import Task


def png(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


def class_folders(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        for i in range(n):
            png(root / label / f"{i}.png", size=(8 + i, 6))
    return root


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def digest(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_clean_dataset_report(tmp_path):
    root = class_folders(tmp_path / "d", {"can": 3, "milk_bottle": 2})
    report = validate_dataset(root)
    assert report.ok and not report.problems
    assert len(report.dataset) == 5 and report.n_unreadable == 0
    assert report.sizes is not None
    assert (report.sizes.width, report.sizes.height) == ((8, 9.0, 10), (6, 6.0, 6))
    text = report.to_text()
    assert "layout:  class-folders" in text and "task:    image-classification" in text
    assert "  can               3" in text and "  milk_bottle       2" in text
    assert "min 8x6, median 9x6, max 10x6" in text and text.endswith("result: OK")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["images_per_label"] == {"can": 3, "milk_bottle": 2}
    assert data["image_sizes"]["width"] == [8, 9.0, 10]


def test_corrupt_and_zero_byte_images(tmp_path):
    root = class_folders(tmp_path / "d", {"can": 10, "carton": 10})
    (root / "can" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (root / "carton" / "empty.jpg").write_bytes(b"")
    report = validate_dataset(root, max_bad_fraction=0.1)
    assert report.ok, report.to_text()
    assert len(report.dataset) == 20 and report.n_unreadable == 2
    problems = {p.path: p for p in report.problems}
    assert (
        problems[str(root / "carton" / "empty.jpg")].what
        == "unreadable image skipped: the file is empty (0 bytes)"
    )
    assert problems[str(root / "can" / "broken.png")].severity == "warning"
    assert str(root / "can" / "broken.png") in report.to_text()


def test_bad_fraction_threshold_both_ways(tmp_path):
    root = class_folders(tmp_path / "d", {"a": 5, "b": 4})
    (root / "b" / "bad.png").write_bytes(b"garbage")  # 1 of 10 images
    assert validate_dataset(root, max_bad_fraction=0.1).ok
    report = validate_dataset(root, max_bad_fraction=0.09)
    assert not report.ok
    [error] = [p for p in report.problems if p.severity == "error"]
    assert error.what.startswith(
        "1 of 10 images (10.0%) cannot be read, more than max_bad_fraction"
    )
    assert report.to_text().endswith("result: FAILED")


def test_label_with_only_unreadable_images(tmp_path):
    root = class_folders(tmp_path / "d", {"a": 3})
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"junk")
    report = validate_dataset(root, max_bad_fraction=0.5)
    assert [p.what for p in report.problems if p.severity == "error"] == [
        "label 'b' has no readable images"
    ]


def test_entry_errors_are_reported_not_raised(tmp_path):
    class_folders(tmp_path, {"can": 2, "milk": 1})
    jsonl = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"image_url": "can/0.png", "label": "can"},
            {"image_url": "can/missing.png", "label": "can"},
            {"image_url": "milk/0.png", "label": "milk"},
            {"image_url": "can/0.png", "label": "milk"},
        ],
    )
    report = validate_dataset(jsonl)
    assert not report.ok
    assert len(report.dataset) == 2
    assert [(p.where, p.severity) for p in report.problems] == [
        (f"{jsonl}:2", "error"),
        (f"{jsonl}:4", "error"),
    ]
    assert "conflicting labels" in report.problems[1].what
    assert f"error   {jsonl}:2: image file 'can/missing.png' does not exist" in report.to_text()


def test_unreadable_input_raises(tmp_path):
    png(tmp_path / "images" / "a.png")
    (tmp_path / "labels.csv").write_bytes(b"filename,labels\na.png,\xff\n")
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        validate_dataset(tmp_path)
    assert (err.value.path, err.value.line) == (str(tmp_path / "labels.csv"), 2)


def test_validation_changes_nothing(tmp_path):
    root = class_folders(tmp_path / "d", {"a": 2, "b": 2})
    (root / "a" / "bad.png").write_bytes(b"junk")
    before = digest(tmp_path)
    validate_dataset(root, max_bad_fraction=1.0)
    assert digest(tmp_path) == before


def test_progress_bar(tmp_path, capsys):
    validate_dataset(class_folders(tmp_path, {"a": 2, "b": 1}), progress=True)
    assert "checking images" in capsys.readouterr().err


def test_multilabel_task_and_report(tmp_path):
    for name in ("a.png", "b.png"):
        png(tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text("filename,labels\na.png,x y\nb.png,y\n")
    report = validate_dataset(tmp_path)
    assert report.dataset.task is Task.MULTILABEL
    assert report.to_dict()["images_per_label"] == {"x": 1, "y": 2}


def test_check_compatible(tmp_path):
    train = read_dataset(class_folders(tmp_path / "train", {"can": 1, "carton": 1}))
    good = read_dataset(class_folders(tmp_path / "val", {"can": 1}))
    check_compatible(train, good)
    bad = read_dataset(class_folders(tmp_path / "val2", {"can": 1, "milk": 1}))
    with pytest.raises(DataError, match=r"label 'milk' .*not in the training data") as err:
        check_compatible(train, bad)
    assert err.value.path == str(tmp_path / "val2" / "milk" / "0.png")
    multilabel = read_dataset(tmp_path / "val", task=Task.MULTILABEL)
    with pytest.raises(DataError, match="validation data is image-classification-multilabel"):
        check_compatible(train, multilabel)


@pytest.mark.timeout(20)
def test_a_fifo_is_reported_as_a_fifo_and_never_opened(tmp_path):
    import os

    root = class_folders(tmp_path / "d", {"can": 2, "milk": 2})
    os.mkfifo(root / "can" / "p.png")
    (root / "milk" / "link.png").symlink_to(root / "can" / "p.png")

    report = validate_dataset(root)

    assert [(p.severity, p.path, p.what) for p in report.problems] == [
        ("error", str(root / "can" / "p.png"), "image is a FIFO, not a regular file"),
        (
            "error",
            str(root / "milk" / "link.png"),
            "image is a symlink to a FIFO, not a regular file",
        ),
    ]
    assert len(report.dataset) == 4


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", ["labels.csv", "train.jsonl", "MLTable", "data.zip"])
def test_an_annotation_file_that_is_a_fifo_stops_with_what_it_is(tmp_path, name):
    import os

    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    os.mkfifo(root / name)
    path = root if name in ("labels.csv", "MLTable") else root / name

    with pytest.raises(DataError) as err:
        validate_dataset(path)

    assert str(err.value).startswith(f"{root / name}: is a FIFO, not a regular file")
