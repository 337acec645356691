"""Tests for deitkit.data.importer: zip → extracted images, JSONL annotations, MLTable folders."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from deitkit.data.formats import read_dataset
from deitkit.data.importer import (
    MLTABLE_TEMPLATE,
    TRAIN_JSONL,
    VALIDATION_JSONL,
    import_dataset,
    validation_indices,
)
from deitkit.errors import ConfigError, DataError
from deitkit.tasks import Task


def _png(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def _class_zip(path: Path, counts: dict[str, int], *, top: str | None = "fridgeObjects") -> Path:
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(path, "w") as zf:
        for label, n in counts.items():
            for i in range(n):
                zf.writestr(f"{prefix}{label}/{i}.png", _png())
    return path


def _multilabel_zip(path: Path, rows: list[tuple[str, str]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        lines = ["filename,labels"] + [f"{name},{labels}" for name, labels in rows]
        zf.writestr("multilabelFridgeObjects/labels.csv", "\n".join(lines) + "\n")
        for name, _ in rows:
            zf.writestr(f"multilabelFridgeObjects/images/{name}", _png("blue"))
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


FRIDGE = {"can": 7, "carton": 6, "milk_bottle": 5}


def test_class_folders_zip_imports_with_every_fifth_image_to_validation(tmp_path):
    out = tmp_path / "data"
    result = import_dataset(_class_zip(tmp_path / "fridge.zip", FRIDGE), out)
    assert (result.n_train, result.n_validation) == (14, 4)
    assert result.labels == ("can", "carton", "milk_bottle")
    assert result.task is Task.MULTICLASS
    assert result.data_dir == out / "fridgeObjects"
    assert (out / "fridgeObjects/can/0.png").is_file()
    # Path order: can/0..6, carton/0..5, milk_bottle/0..4; indices 0, 5, 10, 15 validate.
    assert _jsonl(result.validation_jsonl) == [
        {"image_url": "fridgeObjects/can/0.png", "label": "can"},
        {"image_url": "fridgeObjects/can/5.png", "label": "can"},
        {"image_url": "fridgeObjects/carton/3.png", "label": "carton"},
        {"image_url": "fridgeObjects/milk_bottle/2.png", "label": "milk_bottle"},
    ]
    train = _jsonl(result.train_jsonl)
    assert len(train) == 14 and train[0] == {"image_url": "fridgeObjects/can/1.png", "label": "can"}
    for row in train:
        assert (out / row["image_url"]).is_file()


def test_writes_azure_mltable_folders(tmp_path):
    out = tmp_path / "data"
    result = import_dataset(_class_zip(tmp_path / "fridge.zip", FRIDGE), out)
    assert result.train_mltable == out / "training-mltable-folder"
    assert result.validation_mltable == out / "validation-mltable-folder"
    for folder, jsonl, top_level in (
        (result.train_mltable, TRAIN_JSONL, result.train_jsonl),
        (result.validation_mltable, VALIDATION_JSONL, result.validation_jsonl),
    ):
        assert sorted(p.name for p in folder.iterdir()) == sorted(["MLTable", jsonl])
        assert (folder / "MLTable").read_text() == MLTABLE_TEMPLATE.format(jsonl=jsonl)
        rows = _jsonl(folder / jsonl)
        assert [r["image_url"] for r in rows] == ["../" + r["image_url"] for r in _jsonl(top_level)]
        for row in rows:
            assert (folder / row["image_url"]).is_file()
    assert not list(out.rglob(".*")), "temporary files were left behind"


def test_mltable_package_loads_the_folders(tmp_path):
    import mltable

    result = import_dataset(_class_zip(tmp_path / "fridge.zip", FRIDGE), tmp_path / "data")
    frame = mltable.load(str(result.validation_mltable)).to_pandas_dataframe()
    assert list(frame["label"]) == ["can", "can", "carton", "milk_bottle"]
    assert list(frame.columns) == ["image_url", "label"]


def test_outputs_read_back_as_datasets(tmp_path):
    result = import_dataset(_class_zip(tmp_path / "fridge.zip", FRIDGE), tmp_path / "data")
    for source, n in (
        (result.train_mltable, result.n_train),
        (result.train_jsonl, result.n_train),
        (result.validation_mltable, result.n_validation),
        (result.validation_jsonl, result.n_validation),
    ):
        dataset = read_dataset(source)
        assert len(dataset) == n and dataset.task is Task.MULTICLASS


def test_zip_without_a_top_folder_goes_into_a_folder_named_after_it(tmp_path):
    out = tmp_path / "data"
    result = import_dataset(_class_zip(tmp_path / "pets.zip", {"cat": 5, "dog": 5}, top=None), out)
    assert result.data_dir == out / "pets"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "pets",
            TRAIN_JSONL,
            VALIDATION_JSONL,
            "training-mltable-folder",
            "validation-mltable-folder",
        ]
    )
    assert (result.n_train, result.n_validation) == (8, 2)


def test_multilabel_zip_imports_with_label_lists(tmp_path):
    rows = [
        (f"{i}.png", labels) for i, labels in enumerate(["can milk_bottle", "carton", "can"] * 4)
    ]
    result = import_dataset(_multilabel_zip(tmp_path / "ml.zip", rows), tmp_path / "data")
    assert result.task is Task.MULTILABEL
    assert result.labels == ("can", "carton", "milk_bottle")
    assert (result.n_train, result.n_validation) == (9, 3)
    # Natural order (2.png before 10.png); indices 0, 5 and 10 validate.
    assert _jsonl(result.validation_jsonl) == [
        {"image_url": "multilabelFridgeObjects/images/0.png", "label": ["can", "milk_bottle"]},
        {"image_url": "multilabelFridgeObjects/images/5.png", "label": ["can"]},
        {"image_url": "multilabelFridgeObjects/images/10.png", "label": ["carton"]},
    ]
    assert read_dataset(result.train_mltable).task is Task.MULTILABEL


def test_stratified_split_keeps_label_proportions(tmp_path):
    archive = _class_zip(tmp_path / "f.zip", {"a": 20, "b": 20, "c": 20})
    result = import_dataset(archive, tmp_path / "one", split=0.25, seed=1)
    assert (result.n_train, result.n_validation) == (45, 15)
    assert Counter(r["label"] for r in _jsonl(result.validation_jsonl)) == {"a": 5, "b": 5, "c": 5}
    again = import_dataset(archive, tmp_path / "two", split=0.25, seed=1)
    assert again.validation_jsonl.read_text() == result.validation_jsonl.read_text()
    other = import_dataset(archive, tmp_path / "three", split=0.25, seed=2)
    assert other.validation_jsonl.read_text() != result.validation_jsonl.read_text()


def test_every_fifth_by_default():
    assert validation_indices([("a",)] * 12, Task.MULTICLASS) == [0, 5, 10]


def test_stratified_split_leaves_lone_images_in_training():
    labels = [("a",)] * 10 + [("b",)] * 10 + [("rare",)]
    chosen = validation_indices(labels, Task.MULTICLASS, fraction=0.2, seed=0)
    assert len(chosen) == 4 and 20 not in chosen
    assert Counter(labels[i][0] for i in chosen) == {"a": 2, "b": 2}


def test_multilabel_split_stratifies_on_the_rarest_label():
    # "x" is in every image; "y" and "z" tell the images apart.
    labels = [("x", "y")] * 10 + [("x", "z")] * 10
    chosen = validation_indices(labels, Task.MULTILABEL, fraction=0.2, seed=0)
    assert Counter(labels[i] for i in chosen) == {("x", "y"): 2, ("x", "z"): 2}


def test_split_too_small_for_the_labels_is_refused():
    labels = [("a",)] * 10 + [("b",)] * 10 + [("c",)] * 10
    with pytest.raises(DataError, match=r"validation fraction of 0\.05"):
        validation_indices(labels, Task.MULTICLASS, fraction=0.05)


@pytest.mark.parametrize("split", [0.0, 1.0, -0.2, 1.5])
def test_split_outside_zero_one_is_refused(tmp_path, split):
    with pytest.raises(ConfigError, match="split"):
        import_dataset(_class_zip(tmp_path / "f.zip", FRIDGE), tmp_path / "data", split=split)
    assert not (tmp_path / "data").exists()


def test_refuses_a_non_empty_output(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="not an empty folder"):
        import_dataset(_class_zip(tmp_path / "f.zip", FRIDGE), out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_imports_into_an_existing_empty_folder(tmp_path):
    (tmp_path / "data").mkdir()
    assert import_dataset(_class_zip(tmp_path / "f.zip", FRIDGE), tmp_path / "data").n_train == 14


def test_unsafe_zip_leaves_nothing(tmp_path):
    archive = _class_zip(tmp_path / "evil.zip", FRIDGE)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../escape.png", _png())
    with pytest.raises(DataError, match=r"'\.\./escape\.png' refused"):
        import_dataset(archive, tmp_path / "data")
    assert not (tmp_path / "data").exists() and not (tmp_path / "escape.png").exists()


def test_invalid_dataset_leaves_the_output_as_it_was(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("set/labels.csv", "name,tags\n1.png,can\n")
        zf.writestr("set/images/1.png", _png())
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="filename,labels"):
        import_dataset(archive, tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_task_mismatch_is_refused(tmp_path):
    rows = [(f"{i}.png", "can carton") for i in range(6)]
    with pytest.raises(DataError, match="exactly one label"):
        import_dataset(
            _multilabel_zip(tmp_path / "ml.zip", rows), tmp_path / "d", task="image-classification"
        )
    assert not (tmp_path / "d").exists()


def test_split_that_empties_training_is_refused(tmp_path):
    # One image per label: every-5th sends index 0 to validation and leaves training empty.
    with pytest.raises(DataError, match="training set empty"):
        import_dataset(_class_zip(tmp_path / "tiny.zip", {"a": 1}), tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("hello")
    with pytest.raises(DataError, match="not a readable zip"):
        import_dataset(fake, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def _class_folder(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            (root / label / f"{i}.png").write_bytes(_png())
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_folder_is_copied_and_annotated_like_a_zip_and_left_unchanged(tmp_path):
    folder = _class_folder(tmp_path / "fridgeObjects", FRIDGE)
    before = _snapshot(folder)
    from_folder = import_dataset(folder, tmp_path / "a")
    from_zip = import_dataset(_class_zip(tmp_path / "fridge.zip", FRIDGE), tmp_path / "b")
    assert from_folder.data_dir == tmp_path / "a" / "fridgeObjects"
    assert _jsonl(from_folder.train_jsonl) == _jsonl(from_zip.train_jsonl)
    assert _jsonl(from_folder.validation_jsonl) == _jsonl(from_zip.validation_jsonl)
    assert _snapshot(folder) == before
    assert len(read_dataset(from_folder.train_mltable)) == 14


def test_a_multilabel_folder_imports_with_label_lists(tmp_path):
    root = tmp_path / "ml"
    (root / "images").mkdir(parents=True)
    for i in range(10):
        (root / "images" / f"{i}.png").write_bytes(_png())
    rows = [f"{i}.png,{'can carton' if i % 2 else 'can'}" for i in range(10)]
    (root / "labels.csv").write_text("filename,labels\n" + "\n".join(rows) + "\n")
    result = import_dataset(root, tmp_path / "out", split=0.3)
    assert result.task is Task.MULTILABEL
    labels = [row["label"] for row in _jsonl(result.train_jsonl) + _jsonl(result.validation_jsonl)]
    assert all(isinstance(label, list) for label in labels)
    assert sorted(map(tuple, labels)).count(("can", "carton")) == 5


def test_importing_a_folder_into_itself_is_refused_and_writes_nothing(tmp_path):
    folder = _class_folder(tmp_path / "fridge", FRIDGE)
    before = _snapshot(folder)
    with pytest.raises(DataError, match="lies inside"):
        import_dataset(folder, folder / "imported")
    assert _snapshot(folder) == before
    assert not (folder / "imported").exists()


def test_a_bad_folder_leaves_no_output(tmp_path):
    folder = _class_folder(tmp_path / "fridge", {"can": 1})
    out = tmp_path / "out"
    with pytest.raises(DataError, match="training set empty"):
        import_dataset(folder, out)
    assert not out.exists()


def test_validation_images_lists_the_files_in_annotation_order(tmp_path):
    result = import_dataset(_class_zip(tmp_path / "fridge.zip", FRIDGE), tmp_path / "data")
    images = result.validation_images()
    assert len(images) == result.n_validation and all(p.is_file() for p in images)
    urls = [row["image_url"] for row in _jsonl(result.validation_jsonl)]
    assert [p.relative_to(result.out_dir).as_posix() for p in images] == urls
    assert result.validation_images(2) == images[:2]


def test_links_inside_the_folder_stay_links_into_the_copy(tmp_path):
    folder = _class_folder(tmp_path / "fridge", FRIDGE)
    (folder / "can" / "alias.png").symlink_to(folder / "can" / "0.png")  # absolute, inside
    (folder / ".git").mkdir()
    os.mkfifo(folder / ".git" / "fsmonitor")  # hidden: the reader skips it, so the copy does
    ml = tmp_path / "ml"
    (ml / "pictures").mkdir(parents=True)
    for i in range(5):
        (ml / "pictures" / f"{i}.png").write_bytes(_png())
    (ml / "images").symlink_to(ml / "pictures", target_is_directory=True)
    (ml / "labels.csv").write_text(
        "filename,labels\n" + "".join(f"{i}.png,can\n" for i in range(5))
    )

    classes = import_dataset(folder, tmp_path / "out")
    multilabel = import_dataset(ml, tmp_path / "out-ml")

    assert os.readlink(classes.data_dir / "can" / "alias.png") == "0.png"
    assert not (classes.data_dir / ".git").exists()
    assert classes.n_train + classes.n_validation == 18  # the alias is the same image
    assert os.readlink(multilabel.data_dir / "images") == "pictures"
    assert multilabel.n_train + multilabel.n_validation == 5


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p, tmp: os.mkfifo(p), "is a FIFO, not a regular file; data import copies"),
        (lambda p, tmp: p.symlink_to(tmp / "secret.png"), "is a symlink to .*secret.png, outside"),
        (lambda p, tmp: p.symlink_to("gone.png"), "is a broken symlink"),
    ],
)
def test_fifos_and_links_out_of_the_folder_are_refused(tmp_path, make, why):
    folder = _class_folder(tmp_path / "fridge", FRIDGE)
    (tmp_path / "secret.png").write_bytes(_png())
    make(folder / "can" / "odd.png", tmp_path)
    out = tmp_path / "out"

    with pytest.raises(DataError, match=why) as err:
        import_dataset(folder, out)

    assert str(err.value).startswith(f"{folder / 'can' / 'odd.png'}: ")
    assert not out.exists()


@pytest.mark.timeout(20)
def test_a_fifo_named_like_a_zip_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "data.zip")
    with pytest.raises(DataError, match=r"data\.zip: is a FIFO, not a regular file"):
        import_dataset(tmp_path / "data.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_staging_folder_of_a_killed_import_is_named_with_what_to_do(tmp_path):
    out = tmp_path / "data"
    (out / ".extracting" / "fridgeObjects").mkdir(parents=True)  # what kill -9 leaves

    with pytest.raises(DataError) as err:
        import_dataset(_class_zip(tmp_path / "f.zip", FRIDGE), out)

    assert str(err.value) == (
        f"{out}: refusing to import: the output is not empty: it holds .extracting, the staging "
        f"folder of an import that was stopped before it finished; delete {out} and import again"
    )
