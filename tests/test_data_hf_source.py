"""Which Hugging Face `datasets` input a path names, told from names on disk alone."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hf_helpers import colour_dataset, write_metadata

from deitkit.data.formats import detect_layout
from deitkit.data.hf_source import (
    ARROW,
    HUB,
    IMAGEFOLDER,
    PARQUET,
    SAVE_TO_DISK,
    HfSource,
    hf_source,
)


@pytest.fixture
def saved(colour_folders: Path, tmp_path: Path) -> dict[str, Path]:
    """The colour data as datasets writes it: save_to_disk (one split, a dict), parquet, arrow."""
    from datasets import DatasetDict

    ds = colour_dataset(colour_folders)
    ds.save_to_disk(tmp_path / "disk")
    DatasetDict({"train": ds, "test": ds}).save_to_disk(tmp_path / "dict")
    ds.to_parquet(tmp_path / "one.parquet")
    (tmp_path / "repo" / "data").mkdir(parents=True)
    ds.to_parquet(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet")
    (tmp_path / "repo" / "README.md").write_text("# a hub dataset repo, cloned\n")
    (tmp_path / "arrows").mkdir()
    arrow = next((tmp_path / "disk").glob("*.arrow"))
    (tmp_path / "arrows" / "train.arrow").write_bytes(arrow.read_bytes())
    return {name: tmp_path / name for name in ("disk", "dict", "one.parquet", "repo", "arrows")}


def test_each_local_layout_is_told_from_its_files(saved, colour_folders):
    expected = {
        "disk": SAVE_TO_DISK,
        "dict": SAVE_TO_DISK,
        "one.parquet": PARQUET,
        "repo": PARQUET,
        "arrows": ARROW,
    }
    for name, layout in expected.items():
        assert hf_source(saved[name]) == HfSource(layout, str(saved[name])), name
        assert detect_layout(saved[name]) == layout
    assert hf_source(saved["arrows"] / "train.arrow").layout == ARROW
    # Plain class folders stay class folders; with imagefolder's metadata they are imagefolder.
    assert hf_source(colour_folders) is None
    assert detect_layout(colour_folders) == "class-folders"
    write_metadata(colour_folders, kind="csv")
    assert detect_layout(colour_folders) == IMAGEFOLDER


def test_metadata_in_a_split_folder_is_imagefolder(colour_folders, tmp_path):
    root = tmp_path / "splits"
    (root / "train").mkdir(parents=True)
    write_metadata(colour_folders).rename(root / "train" / "metadata.jsonl")
    assert hf_source(root).layout == IMAGEFOLDER


def test_a_class_folder_with_a_stray_parquet_file_stays_class_folders(colour_folders, saved):
    (colour_folders / "red" / "stats.parquet").write_bytes(saved["one.parquet"].read_bytes())
    assert detect_layout(colour_folders) == "class-folders"


def test_path_colon_split_names_a_split_of_an_existing_path(saved):
    assert hf_source(f"{saved['dict']}:test") == HfSource(SAVE_TO_DISK, str(saved["dict"]), "test")
    assert detect_layout(f"{saved['dict']}:test") == SAVE_TO_DISK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("owner/name", HfSource(HUB, "owner/name")),
        ("owner/name:validation", HfSource(HUB, "owner/name", "validation")),
        ("hf://datasets/owner/name", HfSource(HUB, "owner/name")),
        ("hf://datasets/beans:test", HfSource(HUB, "beans", "test")),
        ("beans", None),  # a bare word is likelier a mistyped folder
        ("missing/file.zip", None),
        ("data/train.jsonl", None),
        ("data/train-00000.parquet", None),
        ("/abs/missing", None),
        ("./rel/missing", None),
    ],
)
def test_hub_ids_are_strings_that_are_no_path_on_disk(text, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert hf_source(text) == expected


def test_an_existing_folder_wins_over_the_hub_id_it_spells(monkeypatch, colour_folders):
    monkeypatch.chdir(colour_folders.parent)
    (colour_folders.parent / "owner").mkdir()
    assert hf_source("owner") is None
    assert hf_source("colours") is None  # exists: class folders, not a hub id


def test_zip_and_jsonl_inputs_are_not_hugging_face(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/1.png", b"")
    (tmp_path / "train.jsonl").write_text("")
    assert hf_source(archive) is None and hf_source(tmp_path / "train.jsonl") is None
