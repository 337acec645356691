"""Tests for deitkit.data.jsonl: Azure ML image JSONL rows into examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deitkit.data.jsonl import read_jsonl
from deitkit.data.problems import ProblemLog


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_crlf_blank_lines_and_bom(root):
    a = json.dumps({"image_url": "a.png", "label": "can"})
    b = json.dumps({"image_url": "b.png", "label": "milk"})
    path = write(root / "x.jsonl", f"\ufeff{a}\r\n\r\n{b}\r\n")
    log = ProblemLog()
    rows = read_jsonl(path, root=root, log=log)
    assert not log.problems
    assert [(ex.path.name, ex.labels, ex.origin) for ex in rows.examples] == [
        ("a.png", ("can",), "x.jsonl:1"),
        ("b.png", ("milk",), "x.jsonl:3"),
    ]
    assert rows.multilabel is False


def test_list_label_makes_file_multilabel(root):
    text = '{"image_url": "a.png", "label": "can"}\n{"image_url": "b.png", "label": ["x", "y"]}\n'
    rows = read_jsonl(write(root / "x.jsonl", text), root=root, log=ProblemLog())
    assert rows.multilabel is True
    assert [ex.labels for ex in rows.examples] == [("can",), ("x", "y")]


@pytest.mark.parametrize(
    ("label", "message"),
    [('""', "empty string"), ('["ok", ""]', "label must be"), ("3", "label must be")],
)
def test_bad_labels(root, label, message):
    path = write(root / "x.jsonl", f'{{"image_url": "a.png", "label": {label}}}\n')
    log = ProblemLog()
    assert read_jsonl(path, root=root, log=log).examples == []
    assert [(p.line, message in p.what) for p in log.errors] == [(1, True)]


def test_invalid_lines_drop_warns(root):
    path = write(root / "x.jsonl", '{"image_url": "a.png", "label": "c"}\n{bad\n')
    log = ProblemLog()
    rows = read_jsonl(path, root=root, log=log, invalid_lines="drop")
    assert len(rows.examples) == 1
    assert [(p.severity, p.line) for p in log.problems] == [("warning", 2)]


def test_relative_to_file_folder(root):
    (root / "sub").mkdir()
    path = write(root / "sub" / "x.jsonl", '{"image_url": "../a.png", "label": "c"}\n')
    rows = read_jsonl(path, root=root, log=ProblemLog())
    assert rows.examples[0].path == root / "a.png"
    assert rows.examples[0].origin == "sub/x.jsonl:1"
