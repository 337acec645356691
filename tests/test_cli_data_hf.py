"""`deitkit data validate` and `data import` on Hugging Face `datasets` inputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hf_helpers import colour_dataset, colour_multilabel_dataset, listing, write_metadata

from deitkit.cli.main import cli
from deitkit.data.formats import read_dataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_validate_a_parquet_file_reports_labels_and_counts(colour_folders, tmp_path):
    colour_dataset(colour_folders).to_parquet(tmp_path / "c.parquet")
    result = _run("data", "validate", str(tmp_path / "c.parquet"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["layout"] == "parquet" and report["ok"] is True
    assert report["images_per_label"] == {"blue": 8, "green": 8, "red": 8}
    assert report["image_sizes"]["width"] == [20, 20.0, 20]


def test_validate_names_the_column_of_a_dict_split(colour_folders, tmp_path):
    from datasets import DatasetDict

    ds = colour_dataset(colour_folders, image="pixels", label="colour")
    DatasetDict({"train": ds, "test": ds.select(range(3))}).save_to_disk(tmp_path / "d")
    result = _run(
        "data", "validate", f"{tmp_path / 'd'}:test", "--image-column", "pixels",
        "--label-column", "colour",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "layout:  save-to-disk" in result.output and "images:  3 usable" in result.output
    bad = _run("data", "validate", str(tmp_path / "d"), "--image-column", "image")
    assert bad.exit_code == 2
    assert "--image-column 'image': no such column (columns: pixels, colour)" in bad.output


def test_import_a_save_to_disk_folder_writes_images_and_mltable(colour_folders, tmp_path):
    colour_dataset(colour_folders).save_to_disk(tmp_path / "disk")
    before = listing(tmp_path / "disk")
    result = _run("data", "import", str(tmp_path / "disk"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "imported 24 images, 3 labels (image-classification): 19 train, 5 validation" in (
        result.output
    )
    # The images are files in OUT/disk/, and the training MLTable reads back as the same data.
    assert sorted(p.name for p in (tmp_path / "out" / "disk").iterdir())[:2] == [
        "train-0.png",
        "train-1.png",
    ]
    train = read_dataset(tmp_path / "out" / "training-mltable-folder")
    validation = read_dataset(tmp_path / "out" / "validation-mltable-folder")
    assert len(train) + len(validation) == 24 and train.labels == ("blue", "green", "red")
    assert all(ex.path.is_relative_to(tmp_path / "out") for ex in train.examples)
    assert listing(tmp_path / "disk") == before


def test_import_an_imagefolder_keeps_its_tree(colour_folders, tmp_path):
    write_metadata(colour_folders)
    result = _run("data", "import", str(colour_folders), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    line = (tmp_path / "out" / "train_annotations.jsonl").read_text().splitlines()[0]
    assert json.loads(line) == {"image_url": "colours/blue/1.png", "label": "blue"}


def test_import_multilabel_parquet(colour_multilabel, tmp_path):
    colour_multilabel_dataset(colour_multilabel).to_parquet(tmp_path / "m.parquet")
    result = _run("data", "import", str(tmp_path / "m.parquet"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "(image-classification-multilabel)" in result.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "train_annotations.jsonl").open()]
    assert all(isinstance(row["label"], list) for row in rows)
    assert rows[0]["image_url"].startswith("m/train-")


def test_a_missing_path_is_still_a_one_line_error(tmp_path):
    result = _run("data", "validate", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'nothing'}: does not exist; expected a folder of class folders" in (
        result.output
    )
