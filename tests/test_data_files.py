"""Tests for deitkit.data.files: what a path is, told by stat alone (a FIFO is never opened)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from deitkit.data.files import MISSING, kind_of, not_a_file, require_file
from deitkit.errors import DataError


@pytest.fixture
def odd_files(tmp_path: Path) -> Path:
    """A FIFO, a socket, links to them and to nothing, a link loop, a folder, a file."""
    os.mkfifo(tmp_path / "p.png")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "s.png"))
    server.close()  # the socket file stays
    (tmp_path / "good.png").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "to-fifo.png").symlink_to("p.png")
    (tmp_path / "to-good.png").symlink_to("good.png")
    (tmp_path / "broken.png").symlink_to("gone.png")
    (tmp_path / "loop-a").symlink_to("loop-b")
    (tmp_path / "loop-b").symlink_to("loop-a")
    return tmp_path


@pytest.mark.timeout(20)
def test_each_kind_is_named_without_opening_it(odd_files):
    assert {name: not_a_file(odd_files / name) for name in sorted(os.listdir(odd_files))} == {
        "broken.png": "is a broken symlink (its target does not exist)",
        "folder": "is a folder, not a regular file",
        "good.png": None,
        "loop-a": "is a symlink loop",
        "loop-b": "is a symlink loop",
        "p.png": "is a FIFO, not a regular file",
        "s.png": "is a socket, not a regular file",
        "to-fifo.png": "is a symlink to a FIFO, not a regular file",
        "to-good.png": None,
    }
    assert not_a_file(odd_files / "missing.png") == MISSING
    assert not_a_file("/dev/null") == "is a character device, not a regular file"
    assert kind_of(os.lstat(odd_files / "to-good.png").st_mode) == "a symlink"


@pytest.mark.timeout(20)
def test_require_file_names_the_path_and_what_it_is(odd_files):
    require_file(odd_files / "to-good.png")
    with pytest.raises(DataError) as err:
        require_file(odd_files / "p.png")
    assert str(err.value) == f"{odd_files / 'p.png'}: is a FIFO, not a regular file"
