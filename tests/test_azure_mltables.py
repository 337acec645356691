"""MLTable folders as Azure receives them: images must stay inside, or be rewritten to URLs."""

from __future__ import annotations

import json
from pathlib import Path

import mltable
import pytest

from deitkit.azure import mltables
from deitkit.data.importer import import_dataset
from deitkit.errors import ConfigError

LONG = (
    "azureml://subscriptions/12345678-90ab-cdef-1234-567890abcdef/resourcegroups/rg/"
    "workspaces/ws/datastores/workspaceblobstore/paths/LocalUpload/abc/colours/"
)
MLTABLE = """\
paths:
  - file: ./rows.jsonl
transformations:
  - read_json_lines:
      encoding: utf8
      invalid_lines: error
      include_path_column: false
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
"""


def _folder(tmp_path: Path, *urls: str, mltable_text: str = MLTABLE) -> Path:
    folder = tmp_path / "table"
    folder.mkdir(exist_ok=True)
    rows = [json.dumps({"image_url": url, "label": "red"}) for url in urls]
    (folder / "rows.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "MLTable").write_text(mltable_text)
    return folder


@pytest.mark.parametrize(
    "url",
    [
        "images/0.png",
        "./images/sub/../0.png",
        LONG + "red/0.png",
    ],
)
def test_urls_and_paths_inside_the_folder_are_accepted(tmp_path, url):
    mltables.check_uploadable(_folder(tmp_path, url), flag="--training-data")


@pytest.mark.parametrize(
    "url, message",
    [
        ("../colours/red/0.png", "is not inside the MLTable folder, and Azure uploads only"),
        ("images/../../x.png", "is not inside the MLTable folder"),
        ("/data/red/0.png", "is not inside the MLTable folder"),
        ("file:///data/red/0.png", "is a URL deitkit's components do not fetch images from"),
        ("s3://bucket/red/0.png", "is a URL deitkit's components do not fetch images from"),
        ("https://account.blob.core.windows.net/c/red/0.png", "do not fetch images from"),
        ("abfss://c@account.dfs.core.windows.net/red/0.png", "do not fetch images from"),
        ("azureml://datastores/ds/paths/fridge/red/0.png", "is a short azureml:// URL"),
    ],
)
def test_images_azure_would_not_find_are_refused_in_one_line(tmp_path, url, message):
    folder = _folder(tmp_path, "images/0.png", url)
    with pytest.raises(ConfigError, match=message) as err:
        mltables.check_uploadable(folder, flag="--training-data")
    text = str(err.value)
    assert "\n" not in text and f"rows.jsonl line 2: image_url {url!r}" in text
    assert text.startswith(f"--training-data {folder}:")


def test_an_imported_folder_is_named_in_the_fix(tmp_path, colour_folders):
    result = import_dataset(colour_folders, tmp_path / "data")
    with pytest.raises(ConfigError) as err:
        mltables.check_uploadable(result.train_mltable, flag="--training-data")
    assert f"`deitkit azure data upload {tmp_path / 'data'} --name NAME`" in str(err.value)
    assert "image_url '../colours/" in str(err.value)


def test_jsonl_outside_the_folder_is_refused(tmp_path):
    _folder(tmp_path, "images/0.png")
    (tmp_path / "elsewhere.jsonl").write_text('{"image_url": "a.png", "label": "red"}\n')
    other = tmp_path / "other"
    other.mkdir()
    (other / "MLTable").write_text(MLTABLE.replace("./rows.jsonl", "../elsewhere.jsonl"))
    with pytest.raises(ConfigError, match="outside the folder, and Azure uploads only the folder"):
        mltables.check_uploadable(other, flag="--validation-data")


def test_rewrite_points_every_row_at_the_uploaded_folder(tmp_path, colour_folders):
    result = import_dataset(colour_folders, tmp_path / "data")
    before = (result.train_mltable / "train_annotations.jsonl").read_bytes()
    dest = tmp_path / "staged" / "training-mltable-folder"
    count = mltables.rewrite(
        result.train_mltable, dest, images=result.data_dir, images_url=LONG.rstrip("/")
    )
    lines = (dest / "train_annotations.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert count == len(rows) == result.n_train
    assert all(row["image_url"].startswith(LONG) for row in rows)
    assert {row["image_url"][len(LONG) :].split("/")[0] for row in rows} == {"blue", "green", "red"}
    assert (dest / "MLTable").read_text() == (result.train_mltable / "MLTable").read_text()
    assert (result.train_mltable / "train_annotations.jsonl").read_bytes() == before  # yours
    mltables.check_uploadable(dest, flag="--training-data")
    # mltable's stream_info reads the long form as a datastore stream (a short form: None).
    frame = mltable.load(str(dest)).to_pandas_dataframe()
    streams = list(frame["image_url"])
    assert all(s is not None and s.handler == "AmlDatastore" for s in streams)
    assert streams[0].arguments["datastoreName"] == "workspaceblobstore"


def test_mltable_reads_only_long_form_and_storage_urls(tmp_path):
    """What research-11 found with mltable 1.7.0, kept true by this test."""
    short = "azureml://datastores/workspaceblobstore/paths/fridge/red/0.png"
    urls = ["images/0.png", short, LONG + "red/0.png", "https://example.com/red/0.png"]
    frame = mltable.load(str(_folder(tmp_path, *urls))).to_pandas_dataframe()
    assert [s is not None for s in frame["image_url"]] == [False, False, True, True]
