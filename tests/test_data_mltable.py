"""Tests for deitkit.data.mltable, and agreement with the `mltable` package on the same folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mltable
import pytest
from PIL import Image

from deitkit.data.formats import read_dataset, read_dataset_with_problems
from deitkit.data.mltable import read_mltable_spec
from deitkit.errors import DataError

READ = """\
paths:
  - file: ./train.jsonl
transformations:
  - read_json_lines:
      encoding: utf8
      invalid_lines: {invalid_lines}
      include_path_column: false
"""
CONVERT = """\
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
"""


def make_folder(tmp_path: Path, rows: list[object], mltable_text: str | None = None) -> Path:
    """`tmp_path/fridge/<label>/<i>.png` images and `tmp_path/train-mltable/` beside them."""
    for label in ("can", "carton", "milk_bottle"):
        for i in range(3):
            path = tmp_path / "fridge" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(path)
    folder = tmp_path / "train-mltable"
    folder.mkdir()
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    text = mltable_text if mltable_text is not None else READ.format(invalid_lines="error")
    (folder / "MLTable").write_text(text)
    return folder


def as_labels(value: object) -> list[str]:
    """mltable gives a str for one label and a numpy array for a list of labels."""
    return [value] if isinstance(value, str) else sorted(value)


def rows(tmp_path: Path, *, uri: bool, multilabel: bool) -> list[dict]:
    names = ["can/0.png", "carton/1.png", "milk_bottle/2.png", "can/2.png"]
    labels = [["can"], ["carton", "can"], ["milk_bottle"], []] if multilabel else None
    out = []
    for i, name in enumerate(names):
        url = (tmp_path / "fridge" / name).as_uri() if uri else f"../fridge/{name}"
        label = labels[i] if labels else name.split("/")[0]
        out.append({"image_url": url, "label": label})
    return out


@pytest.mark.parametrize("multilabel", [False, True])
def test_same_rows_as_mltable_with_relative_paths(tmp_path, multilabel):
    folder = make_folder(tmp_path, rows(tmp_path, uri=False, multilabel=multilabel))
    df = mltable.load(str(folder)).to_pandas_dataframe()
    # mltable leaves relative paths as written; Azure's image jobs resolve them against the
    # JSONL file's folder, as deitkit does.
    theirs = [
        (os.path.normpath(folder / url), as_labels(label))
        for url, label in zip(df["image_url"], df["label"], strict=True)
    ]
    ds = read_dataset(folder)
    assert [(str(ex.path), list(ex.labels)) for ex in ds.examples] == theirs


@pytest.mark.parametrize("multilabel", [False, True])
def test_same_rows_as_mltable_with_stream_info(tmp_path, multilabel):
    text = READ.format(invalid_lines="error") + CONVERT
    folder = make_folder(tmp_path, rows(tmp_path, uri=True, multilabel=multilabel), text)
    df = mltable.load(str(folder)).to_pandas_dataframe()
    # stream_info only converts URIs (file://, azureml://); a plain path would become None.
    theirs = [
        (info.resource_identifier, as_labels(label))
        for info, label in zip(df["image_url"], df["label"], strict=True)
    ]
    ds = read_dataset(folder)
    assert [(str(ex.path), list(ex.labels)) for ex in ds.examples] == theirs
    assert ds.task.is_multilabel is multilabel


def test_spec(tmp_path):
    folder = make_folder(tmp_path, [], READ.format(invalid_lines="drop") + CONVERT)
    spec = read_mltable_spec(folder)
    assert spec.jsonl_files == (folder / "train.jsonl",)
    assert spec.invalid_lines == "drop"


def test_invalid_lines_drop(tmp_path):
    good = rows(tmp_path, uri=False, multilabel=False)
    folder = make_folder(tmp_path, [good[0], "{oops", good[1]], READ.format(invalid_lines="drop"))
    ds, problems = read_dataset_with_problems(folder)
    assert len(ds) == 2
    assert [(p.severity, p.line) for p in problems] == [("warning", 2)]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("paths: [file: ./train.jsonl\n  oops: {", "not valid YAML", 2),
        ("- just\n- a list\n", "expected a YAML mapping", None),
        ("transformations:\n  - read_json_lines: {}\n", "'paths' must be a non-empty list", None),
        ("paths:\n  - folder: ./\ntransformations: [read_json_lines]\n", "only {file:", None),
        ("paths:\n  - file: ./nope.jsonl\ntransformations: [read_json_lines]\n", "does not", None),
        ("paths:\n  - file: ./train.jsonl\n", "'transformations' must be a list", None),
        (
            "paths:\n  - file: ./train.jsonl\ntransformations:\n  - read_delimited: {}\n",
            "unsupported transformation 'read_delimited'",
            None,
        ),
        (
            READ.format(invalid_lines="error") + "  - take: 5\n",
            "unsupported transformation 'take' at position 2",
            None,
        ),
        (READ.format(invalid_lines="skip"), "invalid_lines 'skip'", None),
    ],
)
def test_bad_mltable_file(tmp_path, text, message, line):
    folder = make_folder(tmp_path, rows(tmp_path, uri=False, multilabel=False), text)
    with pytest.raises(DataError, match=message) as err:
        read_dataset(folder)
    assert (err.value.path, err.value.line) == (str(folder / "MLTable"), line)


def test_jsonl_outside_root(tmp_path):
    text = "paths:\n  - file: ../../elsewhere.jsonl\ntransformations: [read_json_lines]\n"
    folder = make_folder(tmp_path / "inner", [], text)
    (tmp_path / "elsewhere.jsonl").write_text("")
    with pytest.raises(DataError, match="outside the dataset root"):
        read_dataset(folder)
