"""Tests for deitkit.data.datastore: azureml:// images fetched with mltable, then read locally."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import write_images

from deitkit.data import datastore
from deitkit.data.formats import read_dataset
from deitkit.data.importer import MLTABLE_TEMPLATE
from deitkit.data.references import DATASTORE_ROOT_ENV, datastore_path
from deitkit.errors import DataError

WORKSPACE = "azureml://subscriptions/s/resourcegroups/g/workspaces/w"


def _mltable(folder: Path, urls: list[str]) -> Path:
    """An MLTable folder with one JSONL row per URL, labelled by position (a/b)."""
    folder.mkdir(parents=True)
    (folder / "MLTable").write_text(MLTABLE_TEMPLATE.format(jsonl="train.jsonl"))
    rows = [json.dumps({"image_url": url, "label": "ab"[i % 2]}) for i, url in enumerate(urls)]
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_fetch_copies_each_url_through_mltable(tmp_path):
    images = write_images(tmp_path / "remote", 4)
    urls = [images[i].as_uri() for i in (2, 0, 3, 1)]  # mltable reads file:// as it does blobs
    fetched = {url: tmp_path / "copy" / f"{n}.png" for n, url in enumerate(urls)}

    datastore.fetch(urls, fetched.get)

    for url, dest in fetched.items():
        assert dest.read_bytes() == Path(url.removeprefix("file://")).read_bytes()
    assert not [p for p in (tmp_path / "copy").iterdir() if p.name.startswith(".")]


def test_a_url_that_cannot_be_read_is_named(tmp_path):
    (good,) = write_images(tmp_path / "remote", 1)
    missing = (tmp_path / "remote/missing.png").as_uri()

    with pytest.raises(DataError, match=r"missing.png.*NotFound.*az login"):
        datastore.fetch([good.as_uri(), missing], lambda url: tmp_path / "copy" / "x.png")


def test_without_mltable_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mltable", None)
    with pytest.raises(DataError, match=r"needs the mltable package.*deitkit\[training\]"):
        datastore.fetch([f"{WORKSPACE}/datastores/ds/paths/a.png"], lambda url: tmp_path)


def test_images_missing_beside_the_mltable_are_fetched_into_the_cache(tmp_path, monkeypatch):
    # As in an Azure job: the mltable folder is mounted alone; the images are in the datastore.
    remote = tmp_path / "datastore"
    write_images(remote / "ds/LocalUpload/h/imgs", 4)
    urls = [f"{WORKSPACE}/datastores/ds/paths/LocalUpload/h/imgs/{i:02d}.png" for i in range(4)]
    folder = _mltable(tmp_path / "mounted/INPUT_training_data", urls)
    monkeypatch.delenv(DATASTORE_ROOT_ENV, raising=False)
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))
    asked = []

    def fake_fetch(wanted, destination):  # the data runtime, reading from `remote`
        asked.extend(wanted)
        for url in wanted:
            destination(url).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(datastore_path(url, remote), destination(url))

    monkeypatch.setattr(datastore, "fetch", fake_fetch)
    dataset = read_dataset(folder)

    assert sorted(asked) == urls
    cache = tmp_path / "cache/datastore/ds/LocalUpload/h/imgs"
    assert sorted(e.path for e in dataset.examples) == sorted(cache.glob("*.png"))
    assert dataset.label_counts() == {"a": 2, "b": 2}


def test_a_local_copy_under_the_root_or_a_configured_datastore_needs_no_fetch(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(datastore, "fetch", lambda *a: pytest.fail("fetched"))
    monkeypatch.delenv(DATASTORE_ROOT_ENV, raising=False)
    urls = [f"{WORKSPACE}/datastores/ds/paths/LocalUpload/h/imgs/{i:02d}.png" for i in range(2)]
    folder = _mltable(tmp_path / "data/train", urls)
    write_images(tmp_path / "data/imgs", 2)  # a downloaded copy: the trailing parts exist
    assert len(read_dataset(folder)) == 2

    monkeypatch.setenv(DATASTORE_ROOT_ENV, str(tmp_path / "store"))
    write_images(tmp_path / "store/ds/LocalUpload/h/imgs", 2)
    assert datastore.datastore_for([folder / "train.jsonl"], folder.parent) == tmp_path / "store"
    assert {e.path.parent for e in read_dataset(folder).examples} == {
        tmp_path / "store/ds/LocalUpload/h/imgs"
    }
