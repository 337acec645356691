"""Tests for deitkit.data.text: UTF-8 reading with the line of the first bad byte."""

from __future__ import annotations

import pytest

from deitkit.data.text import read_text
from deitkit.errors import DataError


def test_reads_utf8_and_drops_bom(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("\ufefffilename,labels\nä.png,can\n".encode())
    assert read_text(path) == "filename,labels\nä.png,can\n"


def test_names_line_of_bad_byte(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"one\ntwo\nth\xffree\n")
    with pytest.raises(DataError, match=r"not valid UTF-8 \(byte 0xff at offset 10\)") as err:
        read_text(path)
    assert (err.value.path, err.value.line) == (str(path), 3)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read the file") as err:
        read_text(tmp_path / "nope.jsonl")
    assert err.value.path == str(tmp_path / "nope.jsonl")
