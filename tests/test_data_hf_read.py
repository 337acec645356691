"""Hugging Face `datasets` inputs read as the same examples as the same images in class folders."""

from __future__ import annotations

import sys

import pytest
from hf_helpers import (
    NAMES,
    colour_dataset,
    colour_multilabel_dataset,
    listing,
    write_metadata,
)

from deitkit.data.formats import read_dataset, read_dataset_with_problems
from deitkit.data.hf_source import TEST_SPLITS, VALIDATION_SPLITS, HfOptions
from deitkit.errors import DataError
from deitkit.tasks import Task


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """deitkit's cache (and datasets' under it) in the test's own folder."""
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _by_label(dataset) -> dict[str, list[bytes]]:
    """Each label's images (file contents, sorted): what the examples hold, wherever they live."""
    found: dict[str, list[bytes]] = {}
    for example in dataset.examples:
        for label in example.labels:
            found.setdefault(label, []).append(example.path.read_bytes())
    return {label: sorted(images) for label, images in sorted(found.items())}


def test_parquet_reads_the_images_and_labels_of_the_class_folders(
    colour_folders, tmp_path, private_cache
):
    file = tmp_path / "colours.parquet"
    colour_dataset(colour_folders).to_parquet(file)
    before = listing(tmp_path / "colours") | {
        "colours.parquet": listing(tmp_path)["colours.parquet"]
    }
    dataset = read_dataset(file)
    folders = read_dataset(colour_folders)
    assert dataset.layout == "parquet" and dataset.task is Task.MULTICLASS
    assert dataset.labels == folders.labels == ("blue", "green", "red")  # ClassLabel names, sorted
    assert len(dataset) == len(folders) == 24
    assert _by_label(dataset) == _by_label(folders)
    assert dataset.root == tmp_path
    # The embedded bytes became files in deitkit's cache; the user's files are as they were.
    assert all(ex.path.is_relative_to(private_cache / "hf-images") for ex in dataset.examples)
    assert {ex.path.suffix for ex in dataset.examples} == {".png"}
    after = listing(tmp_path / "colours") | {
        "colours.parquet": listing(tmp_path)["colours.parquet"]
    }
    assert after == before


def test_a_second_read_reuses_the_cached_image_files(colour_folders, tmp_path):
    file = tmp_path / "colours.parquet"
    colour_dataset(colour_folders).to_parquet(file)
    first = read_dataset(file)
    stamps = [ex.path.stat().st_mtime_ns for ex in first.examples]
    second = read_dataset(file)
    assert [ex.path for ex in second.examples] == [ex.path for ex in first.examples]
    assert [ex.path.stat().st_mtime_ns for ex in second.examples] == stamps


def test_save_to_disk_folders_one_split_or_a_dict(colour_folders, tmp_path):
    from datasets import DatasetDict

    ds = colour_dataset(colour_folders)
    ds.save_to_disk(tmp_path / "disk")
    train, validation = ds.train_test_split(test_size=6, seed=0).values()
    DatasetDict({"train": train, "validation": validation}).save_to_disk(tmp_path / "dict")
    folders = read_dataset(colour_folders)
    one = read_dataset(tmp_path / "disk")
    assert (one.layout, one.labels, _by_label(one)) == (
        "save-to-disk",
        folders.labels,
        _by_label(folders),
    )
    # A DatasetDict: train by default, the validation split for --validation, or PATH:split.
    assert len(read_dataset(tmp_path / "dict")) == 18
    assert len(read_dataset(tmp_path / "dict", hf=HfOptions(splits=VALIDATION_SPLITS))) == 6
    assert len(read_dataset(f"{tmp_path / 'dict'}:validation")) == 6
    assert read_dataset(f"{tmp_path / 'dict'}:validation").examples[0].origin == "validation row 0"
    with pytest.raises(DataError, match=r"dict: has no split 'test' \(splits: train, validation\)"):
        read_dataset(f"{tmp_path / 'dict'}:test")


def test_a_dict_without_the_preferred_split_asks_for_one(colour_folders, tmp_path):
    from datasets import DatasetDict

    ds = colour_dataset(colour_folders)
    DatasetDict({"a": ds, "b": ds}).save_to_disk(tmp_path / "dict")
    with pytest.raises(DataError, match="has splits a, b and none of train; name the one to read"):
        read_dataset(tmp_path / "dict")


def test_a_parquet_folder_names_its_splits_from_the_file_names(colour_folders, tmp_path):
    ds = colour_dataset(colour_folders)
    train, test = ds.train_test_split(test_size=3, seed=0).values()
    (tmp_path / "repo" / "data").mkdir(parents=True)
    train.to_parquet(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet")
    test.to_parquet(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet")
    assert len(read_dataset(tmp_path / "repo")) == 21
    assert len(read_dataset(tmp_path / "repo", hf=HfOptions(splits=TEST_SPLITS))) == 3


def test_arrow_files_read_like_parquet(colour_folders, tmp_path):
    colour_dataset(colour_folders).save_to_disk(tmp_path / "disk")
    arrow = next((tmp_path / "disk").glob("*.arrow"))
    dataset = read_dataset(arrow)
    assert dataset.layout == "arrow" and _by_label(dataset) == _by_label(
        read_dataset(colour_folders)
    )


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_imagefolder_metadata_reads_the_users_own_files(colour_folders, kind):
    folders = read_dataset(colour_folders)
    write_metadata(colour_folders, kind=kind)
    before = listing(colour_folders)
    dataset = read_dataset(colour_folders)
    assert dataset.layout == "imagefolder-metadata"
    assert dataset.labels == folders.labels and len(dataset) == len(folders)
    # No copy: the examples are the very files the class folders hold.
    pairs = {(ex.path, ex.labels) for ex in dataset.examples}
    assert pairs == {(ex.path, ex.labels) for ex in folders.examples}
    assert listing(colour_folders) == before


def test_imagefolder_label_column_is_named_or_detected(colour_folders):
    write_metadata(colour_folders, column="colour")
    with pytest.raises(DataError, match=r"no label column: no ClassLabel column and no column"):
        read_dataset(colour_folders)
    dataset = read_dataset(colour_folders, hf=HfOptions(label_column="colour"))
    assert dataset.labels == ("blue", "green", "red") and len(dataset) == 24


@pytest.mark.parametrize("sequence", [False, True])
def test_multilabel_through_a_list_of_classlabel(colour_multilabel, tmp_path, sequence):
    colour_multilabel_dataset(colour_multilabel, sequence=sequence).to_parquet(
        tmp_path / "m.parquet"
    )
    dataset = read_dataset(tmp_path / "m.parquet")
    folder = read_dataset(colour_multilabel)
    assert dataset.task is Task.MULTILABEL and dataset.labels == folder.labels
    assert sorted((ex.path.read_bytes(), ex.labels) for ex in dataset.examples) == sorted(
        (ex.path.read_bytes(), ex.labels) for ex in folder.examples
    )


def test_columns_given_by_name(colour_folders, tmp_path):
    colour_dataset(colour_folders, image="pixels", label="colour").save_to_disk(tmp_path / "d")
    # Detected by feature (the Image and the ClassLabel column), whatever their names.
    assert len(read_dataset(tmp_path / "d")) == 24
    named = read_dataset(tmp_path / "d", hf=HfOptions(image_column="pixels", label_column="colour"))
    assert len(named) == 24
    with pytest.raises(
        DataError, match=r"--label-column 'tag': no such column \(columns: pixels, colour\)"
    ):
        read_dataset(tmp_path / "d", hf=HfOptions(label_column="tag"))


def test_a_parquet_file_without_an_image_column_is_one_line_naming_the_file(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=NAMES)})
    file = tmp_path / "text.parquet"
    Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}, features=features).to_parquet(file)
    with pytest.raises(DataError) as err:
        read_dataset(file)
    message = str(err.value)
    assert message.startswith(f"{file}: no image column: no Image feature column and no column")
    assert "(columns: text, label); name it with --image-column" in message
    assert "\n" not in message


def test_a_label_id_outside_the_names_is_one_line_naming_column_and_file(colour_folders, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = tmp_path / "bad.parquet"
    colour_dataset(colour_folders).to_parquet(file)
    # datasets refuses such an id when it writes; a parquet file written by other tools need not.
    table = pq.read_table(file)
    labels = table.column("label").to_pylist()
    labels[5] = 7
    index = table.schema.get_field_index("label")
    table = table.set_column(index, "label", pa.array(labels, table.schema.field(index).type))
    pq.write_table(table, file)
    with pytest.raises(DataError) as err:
        read_dataset(file)
    assert str(err.value) == (
        f"{file}: train row 5: label id 7 in column 'label' is not one of its 3 ClassLabel names "
        "(ids 0..2)"
    )
    # Validation goes on past it: the other 23 rows are usable.
    dataset, problems = read_dataset_with_problems(file)
    assert len(dataset) == 23 and [p.severity for p in problems] == ["error"]


def test_without_datasets_installed_other_layouts_work_and_hf_asks_for_the_extra(
    colour_folders, tmp_path, monkeypatch
):
    colour_dataset(colour_folders).to_parquet(tmp_path / "c.parquet")
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    assert len(read_dataset(colour_folders)) == 24
    with pytest.raises(DataError) as err:
        read_dataset(tmp_path / "c.parquet")
    assert str(err.value) == (
        f"{tmp_path / 'c.parquet'}: reading a Hugging Face parquet dataset needs the datasets "
        "library: pip install deitkit[datasets]"
    )


def test_a_hub_id_goes_through_load_dataset(colour_folders, monkeypatch, private_cache):
    import datasets

    calls = []

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        ds = colour_dataset(colour_folders)
        return datasets.DatasetDict({"train": ds, "test": ds.select(range(4))})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    dataset = read_dataset("hf://datasets/someone/colours:test")
    assert calls == [("someone/colours", {"cache_dir": str(private_cache / "hf-datasets")})]
    assert dataset.layout == "hub" and len(dataset) == 4
    assert dataset.root.is_relative_to(private_cache / "hf-images")
    assert len(read_dataset("someone/colours")) == 24


def test_a_hub_id_offline_is_one_line(monkeypatch):
    import datasets

    def load_dataset(path, **kwargs):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        read_dataset("someone/colours")
    assert str(err.value) == (
        "someone/colours: no such file or folder, and not loadable as a Hugging Face Hub "
        "dataset (HF_HUB_OFFLINE is set)"
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(
        DataError,
        match=r"\(ConnectionError: Couldn't reach 'someone/colours' on the Hub \(LocalEntry"
        r"NotFoundError\)\)$",
    ):
        read_dataset("someone/colours")


def test_images_given_as_paths_must_stay_inside_the_folder(colour_folders, tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    outside = tmp_path / "elsewhere.png"
    outside.write_bytes((colour_folders / "red" / "0.png").read_bytes())
    features = Features({"image": Value("string"), "label": ClassLabel(names=NAMES)})
    rows = {"image": ["red/0.png", str(outside), "red/missing.png"], "label": [0, 0, 0]}
    Dataset.from_dict(rows, features=features).to_parquet(colour_folders / "paths.parquet")
    dataset, problems = read_dataset_with_problems(colour_folders / "paths.parquet")
    assert [ex.path for ex in dataset.examples] == [colour_folders / "red" / "0.png"]
    assert [p.what for p in problems if p.severity == "error"] == [
        f"train row 1: image {outside} lies outside the dataset folder {colour_folders}",
        "train row 2: image red/missing.png does not exist",
    ]
