"""Tests for deitkit.data.formats: the five layouts, detection, task rules and bad inputs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deitkit.data import datastore
from deitkit.data.formats import detect_layout, read_dataset, read_dataset_with_problems
from deitkit.data.references import DATASTORE_ROOT_ENV
from deitkit.errors import ConfigError, DataError
from deitkit.tasks import Task

MLTABLE = """\
paths:
  - file: ./{name}
transformations:
  - read_json_lines:
      encoding: utf8
      invalid_lines: error
      include_path_column: false
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
"""


def png(path: Path, size: tuple[int, int] = (6, 5), color: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (color, 0, 0)).save(path)
    return path


def class_folders(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        for i in range(n):
            png(root / label / f"{i}.png", color=i)
    return root


def multilabel_folder(root: Path, rows: list[tuple[str, str]]) -> Path:
    for name, _ in rows:
        png(root / "images" / name)
    lines = ["filename,labels", *(f"{name},{labels}" for name, labels in rows)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and mtime, to prove reading writes nothing."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path_factory.mktemp("cache")))


def test_class_folders(tmp_path):
    root = class_folders(tmp_path / "fridge", {"can": 2, "carton": 3})
    (root / ".DS_Store").write_bytes(b"junk")
    png(root / "__MACOSX" / "._0.png")
    (root / "can" / "notes.txt").write_text("not an image")
    png(root / "can" / "UPPER.JPG")
    assert detect_layout(root) == "class-folders"
    ds = read_dataset(root)
    assert (ds.layout, ds.task, ds.labels) == ("class-folders", Task.MULTICLASS, ("can", "carton"))
    assert ds.label_counts() == {"can": 3, "carton": 3}
    assert {ex.path.name for ex in ds.examples if ex.labels == ("can",)} == {
        "0.png",
        "1.png",
        "UPPER.JPG",
    }
    assert ds.root == root
    assert next(ex.origin for ex in ds.examples if ex.path.name == "0.png") == "can/0.png"


def test_empty_label_folder_is_named(tmp_path):
    root = class_folders(tmp_path / "d", {"can": 2})
    (root / "milk_bottle").mkdir()
    with pytest.raises(DataError, match="label 'milk_bottle' has no images") as err:
        read_dataset(root)
    assert err.value.path == str(root / "milk_bottle")


def test_wrapper_folder_hint(tmp_path):
    class_folders(tmp_path / "data" / "fridgeObjects", {"can": 1, "carton": 1})
    with pytest.raises(DataError, match="one level down"):
        read_dataset(tmp_path / "data")


def test_multilabel_folder(tmp_path):
    root = multilabel_folder(
        tmp_path / "ml", [("a.png", "can carton"), ("b.png", "milk"), ("c.png", "")]
    )
    assert detect_layout(root) == "multilabel-folder"
    ds = read_dataset(root)
    assert (ds.task, ds.labels) == (Task.MULTILABEL, ("can", "carton", "milk"))
    by_name = {ex.path.name: ex for ex in ds.examples}
    assert by_name["a.png"].labels == ("can", "carton")
    assert by_name["c.png"].labels == ()  # an empty cell: an image with none of the labels
    assert by_name["b.png"].origin == "labels.csv:3"


def test_multilabel_folder_as_multiclass(tmp_path):
    root = multilabel_folder(tmp_path / "ml", [("a.png", "can"), ("b.png", "milk")])
    assert read_dataset(root, task="image-classification").task is Task.MULTICLASS
    (root / "labels.csv").write_text("filename,labels\na.png,can\nb.png,can milk\n")
    with pytest.raises(DataError, match="exactly one label per image, found 2") as err:
        read_dataset(root, task=Task.MULTICLASS)
    assert (err.value.path, err.value.line) == (str(root / "labels.csv"), 3)


def test_non_utf8_labels_csv(tmp_path):
    root = multilabel_folder(tmp_path / "ml", [("a.png", "can")])
    (root / "labels.csv").write_bytes(b"filename,labels\na.png,can\na.png,caf\xe9\n")
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        read_dataset(root)
    assert (err.value.path, err.value.line) == (str(root / "labels.csv"), 3)


def test_ragged_labels_csv(tmp_path):
    root = multilabel_folder(tmp_path / "ml", [("a.png", "can"), ("b.png", "can")])
    (root / "labels.csv").write_text("filename,labels\na.png,can\nb.png,can,extra\n")
    with pytest.raises(DataError, match="expected 2 columns") as err:
        read_dataset(root)
    assert (err.value.path, err.value.line) == (str(root / "labels.csv"), 3)


def test_labels_csv_without_header(tmp_path):
    root = multilabel_folder(tmp_path / "ml", [("a.png", "can")])
    (root / "labels.csv").write_text("a.png,can\n")
    with pytest.raises(DataError, match="expected the header 'filename,labels'") as err:
        read_dataset(root)
    assert err.value.line == 1


def test_jsonl_multiclass_and_multilabel(tmp_path):
    class_folders(tmp_path / "imgs", {"can": 2, "carton": 1})
    jsonl = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"image_url": "imgs/can/0.png", "label": "can", "image_details": {"format": "png"}},
            {"image_url": "./imgs/carton/0.png", "label": "carton"},
        ],
    )
    assert detect_layout(jsonl) == "jsonl"
    ds = read_dataset(jsonl)
    assert (ds.layout, ds.task, ds.labels, ds.root) == (
        "jsonl",
        Task.MULTICLASS,
        ("can", "carton"),
        tmp_path,
    )
    assert [ex.origin for ex in ds.examples] == ["train.jsonl:1", "train.jsonl:2"]
    write_jsonl(
        jsonl,
        [
            {"image_url": str(tmp_path / "imgs/can/0.png"), "label": ["can", "carton"]},
            {"image_url": "imgs/can/1.png", "label": "can"},
            {"image_url": "imgs/carton/0.png", "label": []},
        ],
    )
    ds = read_dataset(jsonl)
    assert ds.task is Task.MULTILABEL
    assert [ex.labels for ex in ds.examples] == [("can", "carton"), ("can",), ()]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"label": "can"}', "missing key 'image_url'"),
        ('{"image_url": "a.png"}', "missing key 'label'"),
        ('{"image_url": "a.png", "label": {"x": 1}}', "label must be"),
        ('{"image_url": "https://example.com/a.png", "label": "can"}', "cannot read"),
    ],
)
def test_bad_jsonl_line(tmp_path, line, message):
    png(tmp_path / "a.png")
    jsonl = write_jsonl(tmp_path / "x.jsonl", [{"image_url": "a.png", "label": "can"}, line])
    with pytest.raises(DataError, match=message) as err:
        read_dataset(jsonl)
    assert (err.value.path, err.value.line) == (str(jsonl), 2)


def test_missing_file(tmp_path):
    png(tmp_path / "a.png")
    jsonl = write_jsonl(
        tmp_path / "x.jsonl",
        [{"image_url": "a.png", "label": "can"}, {"image_url": "gone.png", "label": "can"}],
    )
    with pytest.raises(DataError, match=r"'gone\.png' does not exist") as err:
        read_dataset(jsonl)
    assert str(err.value).startswith(f"{jsonl}:2: ")


@pytest.mark.parametrize("escape", ["../outside.png", "sub/../../outside.png", "ABS"])
def test_path_escaping_root(tmp_path, escape):
    outside = png(tmp_path / "outside.png")
    root = tmp_path / "data"
    png(root / "a.png")
    ref = str(outside) if escape == "ABS" else escape
    jsonl = write_jsonl(
        root / "x.jsonl", [{"image_url": "a.png", "label": "b"}, {"image_url": ref, "label": "c"}]
    )
    with pytest.raises(DataError, match="escapes the dataset root") as err:
        read_dataset(jsonl)
    assert (err.value.path, err.value.line) == (str(jsonl), 2)


def test_symlink_pointing_outside_root(tmp_path):
    outside = png(tmp_path / "secret.png")
    root = class_folders(tmp_path / "data", {"can": 1, "carton": 1})
    (root / "can" / "link.png").symlink_to(outside)
    with pytest.raises(DataError, match="symlink pointing outside") as err:
        read_dataset(root)
    assert err.value.path == str(root / "can" / "link.png")
    jsonl = write_jsonl(root / "x.jsonl", [{"image_url": "can/link.png", "label": "can"}])
    with pytest.raises(DataError, match="symlink pointing outside"):
        read_dataset(jsonl)


def test_duplicates(tmp_path, caplog):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png")
    jsonl = write_jsonl(
        tmp_path / "x.jsonl",
        [
            {"image_url": "a.png", "label": "can"},
            {"image_url": "b.png", "label": "milk"},
            {"image_url": "./a.png", "label": "can"},
        ],
    )
    with caplog.at_level(logging.WARNING, logger="deitkit.data.formats"):
        ds = read_dataset(jsonl)
    assert len(ds) == 2
    assert "x.jsonl:3: duplicate entry for the image of x.jsonl:1" in caplog.text
    write_jsonl(
        jsonl,
        [
            {"image_url": "a.png", "label": "can"},
            {"image_url": "b.png", "label": "milk"},
            {"image_url": "a.png", "label": "milk"},
        ],
    )
    with pytest.raises(DataError, match=r"conflicting labels .*x\.jsonl:1.*x\.jsonl:3") as err:
        read_dataset(jsonl)
    assert err.value.line == 3


def test_all_errors_are_collected(tmp_path):
    png(tmp_path / "a.png")
    rows = [{"image_url": "a.png", "label": "can"}, "[]", {"image_url": "x.png", "label": "c"}]
    jsonl = write_jsonl(tmp_path / "x.jsonl", rows)
    ds, problems = read_dataset_with_problems(jsonl)
    assert len(ds) == 1
    errors = [(p.path, p.line) for p in problems if p.severity == "error"]
    assert errors == [(str(jsonl), 2), (str(jsonl), 3)]
    with pytest.raises(DataError, match="and 1 more errors"):
        read_dataset(jsonl)


def test_mltable_folder_beside_images(tmp_path):
    class_folders(tmp_path / "fridgeObjects", {"can": 2, "carton": 2})
    folder = tmp_path / "training-mltable-folder"
    write_jsonl(
        folder / "train.jsonl",
        [
            {"image_url": "../fridgeObjects/can/0.png", "label": "can"},
            {"image_url": "../fridgeObjects/carton/1.png", "label": "carton"},
        ],
    )
    (folder / "MLTable").write_text(MLTABLE.format(name="train.jsonl"))
    assert detect_layout(folder) == detect_layout(folder / "MLTable") == "mltable"
    ds = read_dataset(folder)
    assert (ds.layout, ds.root, ds.labels) == ("mltable", tmp_path, ("can", "carton"))
    assert ds.examples[1].path == tmp_path / "fridgeObjects" / "carton" / "1.png"
    assert ds.examples[1].origin == "training-mltable-folder/train.jsonl:2"
    assert read_dataset(folder / "MLTable").examples == ds.examples


def test_azureml_uri_resolves_to_local_copy(tmp_path, monkeypatch):
    class_folders(tmp_path / "fridgeObjects", {"can": 1})
    base = "azureml://subscriptions/s/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore"
    rows = [
        {"image_url": f"{base}/paths/LocalUpload/abc123/fridgeObjects/can/0.png", "label": "can"},
        {"image_url": "azureml://datastores/blob/paths/fridgeObjects/can/0.png", "label": "can"},
    ]
    ds = read_dataset(write_jsonl(tmp_path / "train.jsonl", rows))
    assert [ex.path for ex in ds.examples] == [tmp_path / "fridgeObjects/can/0.png"]
    # Without a local copy the image is fetched from its datastore (deitkit.data.datastore).
    rows = [{"image_url": "azureml://datastores/blob/paths/elsewhere/9.png", "label": "can"}]
    monkeypatch.delenv(DATASTORE_ROOT_ENV, raising=False)

    def unreachable(urls, destination):
        raise DataError(f"cannot fetch {urls[0]!r}")

    monkeypatch.setattr(datastore, "fetch", unreachable)
    with pytest.raises(DataError, match=r"cannot fetch 'azureml://datastores/blob/paths/else"):
        read_dataset(write_jsonl(tmp_path / "train.jsonl", rows))


def test_zip_of_class_folders(tmp_path, monkeypatch):
    src = class_folders(tmp_path / "src" / "fridgeObjects", {"can": 2, "carton": 1})
    data = tmp_path / "data"
    data.mkdir()
    zip_path = data / "fridgeObjects.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(src.rglob("*.png")):
            zf.write(p, p.relative_to(src.parent).as_posix())
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEITKIT_CACHE", str(cache))
    before = tree_digest(data)
    assert detect_layout(zip_path) == "zip"
    ds = read_dataset(zip_path)
    assert (ds.layout, ds.labels, len(ds)) == ("class-folders", ("can", "carton"), 3)
    assert ds.root.name == "fridgeObjects" and ds.root.is_relative_to(cache)
    assert tree_digest(data) == before

    def no_second_extraction(*args):
        raise AssertionError("extracted twice")

    # The complete extraction in the cache is reused.
    monkeypatch.setattr("deitkit.data.archive.extract_zip", no_second_extraction)
    assert read_dataset(zip_path).examples == ds.examples


def test_zip_of_multilabel_folder(tmp_path):
    src = multilabel_folder(tmp_path / "ml", [("a.png", "can milk"), ("b.png", "can")])
    zip_path = tmp_path / "ml.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src).as_posix())
    ds = read_dataset(zip_path)
    assert (ds.layout, ds.task, ds.labels) == (
        "multilabel-folder",
        Task.MULTILABEL,
        ("can", "milk"),
    )


def test_bad_zip_is_refused(tmp_path):
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("../escape.png", b"x")
    with pytest.raises(DataError, match=r"evil\.zip"):
        read_dataset(zip_path)


def test_detect_layout_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="expected a folder of class folders"):
        detect_layout(tmp_path / "notes.txt")
    png(tmp_path / "a.png")
    with pytest.raises(DataError, match="found images but no label folders"):
        detect_layout(tmp_path)


def test_reading_changes_nothing(tmp_path):
    root = class_folders(tmp_path / "fridge", {"can": 2, "carton": 2})
    write_jsonl(root / "x.jsonl", [{"image_url": "can/0.png", "label": "can"}, "[bad"])
    before = tree_digest(tmp_path)
    read_dataset(root)
    read_dataset_with_problems(root / "x.jsonl")
    assert tree_digest(tmp_path) == before
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))


def test_unknown_task(tmp_path):
    root = class_folders(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(ConfigError, match="unknown task"):
        read_dataset(root, task="detection")
    assert read_dataset(root, task="image-classification-multilabel").task is Task.MULTILABEL


def test_root_given_through_symlink(tmp_path):
    root = class_folders(tmp_path / "real", {"a": 1, "b": 1})
    os.symlink(root, tmp_path / "alias")
    assert len(read_dataset(tmp_path / "alias")) == 2


def test_zip_of_mltable_is_refused(tmp_path):
    zip_path = tmp_path / "m.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("train-mltable/MLTable", MLTABLE.format(name="t.jsonl"))
        zf.writestr("train-mltable/t.jsonl", "")
    with pytest.raises(DataError, match="a zip must hold class folders or images/"):
        read_dataset(zip_path)
