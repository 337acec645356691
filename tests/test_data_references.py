"""Tests for deitkit.data.references: image names and resolving references inside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from deitkit.data.references import is_ignored, is_image_name, is_inside, resolve_reference
from deitkit.errors import DataError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data" / "imgs").mkdir(parents=True)
    (tmp_path / "data" / "imgs" / "a b.png").write_bytes(b"x")
    (tmp_path / "outside.png").write_bytes(b"x")
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.PNG", True),
        ("b.jpeg", True),
        ("c.TiF", True),
        ("d.webp", True),
        ("e.txt", False),
        (".hidden.png", False),
        ("noext", False),
    ],
)
def test_is_image_name(name, expected):
    assert is_image_name(Path(name)) is expected


def test_is_ignored():
    assert is_ignored(Path("__MACOSX")) and is_ignored(Path(".DS_Store"))
    assert not is_ignored(Path("can"))


@pytest.mark.parametrize(
    "ref",
    [
        "imgs/a b.png",
        "./imgs/../imgs/a b.png",
        "ROOT/imgs/a b.png",
        "URI",
        "azureml://datastores/ds/paths/upload/x/imgs/a%20b.png",
    ],
)
def test_resolves(root, ref):
    target = root / "imgs" / "a b.png"
    ref = {"ROOT/imgs/a b.png": str(target), "URI": target.as_uri()}.get(ref, ref)
    assert resolve_reference(ref, base=root, root=root) == target


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("../outside.png", "escapes the dataset root"),
        ("OUTSIDE", "escapes the dataset root"),
        ("imgs/none.png", "does not exist"),
        ("imgs", "is a folder, not a regular file"),
        ("", "non-empty string"),
        (None, "non-empty string"),
        ("wasbs://container@account/x.png", "cannot read"),
        ("azureml://datastores/ds/paths/a/../../outside.png", "must not climb"),
        ("azureml://datastores/ds/paths/nothing/here.png", "no trailing part"),
    ],
)
def test_refuses(root, ref, message):
    ref = str(root.parent / "outside.png") if ref == "OUTSIDE" else ref
    with pytest.raises(DataError, match=message):
        resolve_reference(ref, base=root, root=root)


def test_symlinks(root):
    (root / "out.png").symlink_to(root.parent / "outside.png")
    (root / "in.png").symlink_to(root / "imgs" / "a b.png")
    assert not is_inside(root / "out.png", root)
    with pytest.raises(DataError, match="symlink pointing outside"):
        resolve_reference("out.png", base=root, root=root)
    assert resolve_reference("in.png", base=root, root=root) == root / "in.png"
