"""Tests for deitkit.data.folders: class folders and images/ + labels.csv."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from deitkit.data.folders import read_class_folders, read_multilabel_folder
from deitkit.data.problems import ProblemLog
from deitkit.errors import DataError


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (3, 3)).save(path)


def test_class_folders_warn_about_ignored_things(tmp_path):
    png(tmp_path / "can" / "1.png")
    png(tmp_path / "can" / "nested" / "2.png")
    png(tmp_path / "stray.png")
    png(tmp_path / ".hidden" / "3.png")
    log = ProblemLog()
    examples = read_class_folders(tmp_path, log)
    assert [(ex.path.name, ex.labels) for ex in examples] == [("1.png", ("can",))]
    assert not log.errors
    warnings = [(p.path, p.what) for p in log.warnings]
    assert (str(tmp_path / "can"), "sub-folders of label folder 'can' ignored: nested") in warnings
    assert any(path == str(tmp_path) and "'stray.png'" in what for path, what in warnings)


def test_label_folder_with_only_other_files(tmp_path):
    png(tmp_path / "can" / "1.png")
    (tmp_path / "carton").mkdir()
    (tmp_path / "carton" / "readme.txt").write_text("no images here")
    log = ProblemLog()
    read_class_folders(tmp_path, log)
    assert [(p.path, p.what.split(" (")[0]) for p in log.errors] == [
        (str(tmp_path / "carton"), "label 'carton' has no images")
    ]


def test_labels_csv_quoting_and_unlisted_images(tmp_path):
    for name in ("a,1.png", "b.png", "c.png"):
        png(tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text('filename,labels\n"a,1.png",can  milk\n\nb.png,can\n')
    log = ProblemLog()
    examples = read_multilabel_folder(tmp_path, log)
    assert [(ex.path.name, ex.labels, ex.origin) for ex in examples] == [
        ("a,1.png", ("can", "milk"), "labels.csv:2"),
        ("b.png", ("can",), "labels.csv:4"),
    ]
    assert [p.what for p in log.warnings] == [
        "1 image(s) in images/ not listed in labels.csv, ignored (e.g. 'c.png')"
    ]


def test_labels_csv_missing_image_and_escape(tmp_path):
    png(tmp_path / "images" / "a.png")
    (tmp_path / "labels.csv").write_text(
        "filename,labels\nnope.png,can\n../../x.png,can\na.png,c\n"
    )
    log = ProblemLog()
    assert len(read_multilabel_folder(tmp_path, log)) == 1
    assert [(p.path, p.line) for p in log.errors] == [
        (str(tmp_path / "labels.csv"), 2),
        (str(tmp_path / "labels.csv"), 3),
    ]
    assert "'nope.png' does not exist" in log.errors[0].what
    assert "'../../x.png' escapes the dataset root" in log.errors[1].what


def test_images_folder_missing(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,labels\n")
    with pytest.raises(DataError, match=r"folder images/ missing beside labels\.csv"):
        read_multilabel_folder(tmp_path, ProblemLog())


def test_broken_symlink_is_an_error(tmp_path):
    png(tmp_path / "can" / "1.png")
    (tmp_path / "can" / "2.png").symlink_to(tmp_path / "can" / "gone.png")
    log = ProblemLog()
    assert len(read_class_folders(tmp_path, log)) == 1
    assert [(p.path, p.what) for p in log.errors] == [
        (str(tmp_path / "can" / "2.png"), "image is a broken symlink (its target does not exist)")
    ]
