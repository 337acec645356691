"""An imported dataset uploaded as Azure's samples do: images, then MLTables of their URLs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from azure_mock import MockMLClient

from deitkit.azure import data as azure_data
from deitkit.data.importer import import_dataset
from deitkit.errors import ConfigError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def imported(tmp_path, colour_folders):
    return import_dataset(colour_folders, tmp_path / "data")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_imported_folder_is_read_back(imported):
    found = azure_data.read_imported(imported.out_dir)
    assert found.images == imported.data_dir.absolute()
    assert found.mltables == {
        "training": imported.train_mltable.absolute(),
        "validation": imported.validation_mltable.absolute(),
    }


@pytest.mark.parametrize("make", ["empty", "class-folders", "missing-image"])
def test_a_folder_that_is_not_an_import_is_refused_naming_the_fix(tmp_path, imported, make):
    folder = tmp_path / "data"
    if make == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif make == "class-folders":
        folder = imported.data_dir  # the images alone, not what import wrote
    else:
        next(imported.data_dir.rglob("*.png")).unlink()
    with pytest.raises(ConfigError) as err:
        azure_data.read_imported(folder)
    text = str(err.value)
    assert "\n" not in text
    if make == "missing-image":
        assert "is missing" in text
    else:
        assert "not a folder `deitkit data import` wrote" in text
        assert "deitkit data import DATASET --out DATA" in text


def test_upload_registers_images_then_mltables_of_their_urls(imported):
    before = _snapshot(imported.out_dir)
    client = MockMLClient()
    plan = azure_data.plan_upload(azure_data.read_imported(imported.out_dir), "colours")
    done = azure_data.upload(client, plan)
    writes = client.writes()
    assert [(c.entity.name, c.entity.type) for c in writes] == [
        ("colours-images", "uri_folder"),
        ("colours-training", "mltable"),
        ("colours-validation", "mltable"),
    ]
    assert done.images == "azureml:colours-images:1"
    assert done.mltables == {
        "training": "azureml:colours-training:1",
        "validation": "azureml:colours-validation:1",
    }
    assert done.images_url.startswith("azureml://subscriptions/") and done.images_url.endswith(
        f"/{imported.data_dir.name}/"
    )
    images = client.uploaded("data", "colours-images", "1")
    table = client.uploaded("data", "colours-training", "1")
    rows = [
        json.loads(line)
        for line in (table / "train_annotations.jsonl").read_text().split("\n")
        if line
    ]
    assert len(rows) == imported.n_train
    for row in rows:  # every URL names a file that was uploaded with the images
        assert row["image_url"].startswith(done.images_url)
        assert (images / row["image_url"][len(done.images_url) :]).is_file()
    assert writes[1].entity.tags == {"images": "azureml:colours-images:1"}
    assert _snapshot(imported.out_dir) == before  # the user's folders are never changed

    again = azure_data.upload(client, azure_data.plan_upload(plan.data, "colours"))
    assert again.mltables["training"] == "azureml:colours-training:2"  # the next version


def test_a_version_is_immutable(imported, tmp_path):
    client = MockMLClient()
    data = azure_data.read_imported(imported.out_dir)
    azure_data.upload(client, azure_data.plan_upload(data, "colours", version="3"))
    azure_data.upload(client, azure_data.plan_upload(data, "colours", version="3"))  # same
    next(imported.data_dir.rglob("*.png")).write_bytes(b"changed")
    with pytest.raises(Exception, match="already exists with other content"):
        azure_data.upload(client, azure_data.plan_upload(data, "colours", version="3"))


def test_a_short_path_from_the_service_is_written_in_the_long_form():
    client = MockMLClient()
    short = "azureml://datastores/workspaceblobstore/paths/LocalUpload/abc/colours"
    assert azure_data.long_form(short, client) == (
        f"azureml://subscriptions/{client.subscription_id}/resourcegroups/rg/workspaces/ws/"
        "datastores/workspaceblobstore/paths/LocalUpload/abc/colours/"
    )


@pytest.mark.parametrize(
    "url, message",
    [
        ("azureml://datastores/workspaceblobstore/paths/x/", "pass the long form"),
        ("../colours/", "expected the azureml:// path"),
    ],
)
def test_stage_needs_the_uploaded_folders_url(imported, tmp_path, url, message):
    with pytest.raises(ConfigError, match=message):
        azure_data.stage(azure_data.read_imported(imported.out_dir), url, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["-colours", "col ours", "x" * 250])
def test_bad_names_are_refused(imported, name):
    with pytest.raises(ConfigError, match=re.escape(f"--name {name!r} is not allowed")):
        azure_data.plan_upload(azure_data.read_imported(imported.out_dir), name)
