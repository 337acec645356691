"""Tests for deitkit.data.archive: every refusal, the caps, and all-or-nothing extraction."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from deitkit.data.archive import ArchiveLimits, archive_limits_from_env, extract_zip
from deitkit.errors import ConfigError, DataError


def _zip(path: Path, entries: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _zip_with_mode(path: Path, name: str, mode: int, data: bytes = b"target") -> Path:
    """A zip whose one entry carries a Unix file type (symlink, device, fifo) in its attrs."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        info = zipfile.ZipInfo(name)
        info.create_system = 3  # Unix, so external_attr's high word is a st_mode
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


def _assert_nothing_left(dest: Path) -> None:
    assert not dest.exists()
    assert not list(dest.parent.glob(f".{dest.name}.*")), "a partial folder was left behind"


def test_extracts_files_and_folders(tmp_path):
    archive = _zip(
        tmp_path / "good.zip",
        {"data/": b"", "data/a/1.txt": b"one", "data/b/2.txt": b"two", "top.txt": b"t"},
    )
    dest = tmp_path / "out"
    files = extract_zip(archive, dest)
    assert files == [dest / "data/a/1.txt", dest / "data/b/2.txt", dest / "top.txt"]
    assert (dest / "data/a/1.txt").read_bytes() == b"one"
    assert (dest / "top.txt").read_bytes() == b"t"
    assert not list(tmp_path.glob(".out.*"))


def test_extracts_into_an_existing_empty_folder(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    extract_zip(_zip(tmp_path / "a.zip", {"x.txt": b"x"}), dest)
    assert (dest / "x.txt").read_bytes() == b"x"


def test_refuses_a_non_empty_destination(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "user.txt").write_text("keep me")
    with pytest.raises(DataError, match="not an empty folder"):
        extract_zip(_zip(tmp_path / "a.zip", {"x.txt": b"x"}), dest)
    assert (dest / "user.txt").read_text() == "keep me"
    assert not (dest / "x.txt").exists()


def test_skips_macos_metadata(tmp_path):
    archive = _zip(
        tmp_path / "mac.zip",
        {
            "d/1.txt": b"1",
            "__MACOSX/d/._1.txt": b"meta",
            "d/.DS_Store": b"meta",
            ".DS_Store": b"meta",
        },
    )
    dest = tmp_path / "out"
    assert extract_zip(archive, dest) == [dest / "d/1.txt"]
    assert sorted(p.name for p in dest.rglob("*")) == ["1.txt", "d"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/etc/evil.txt", "absolute"),
        ("C:/Windows/evil.txt", "absolute"),
        ("../evil.txt", r"'\.\.'"),
        ("data/../../evil.txt", r"'\.\.'"),
        ("..\\evil.txt", r"'\.\.'"),
    ],
)
def test_refuses_path_escapes(tmp_path, name, why):
    archive = _zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})
    dest = tmp_path / "sub" / "out"
    with pytest.raises(DataError, match=why) as err:
        extract_zip(archive, dest)
    assert str(archive) in str(err.value) and repr(name) in str(err.value)
    _assert_nothing_left(dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub/evil.txt").exists()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (stat.S_IFLNK | 0o777, "symbolic links"),
        (stat.S_IFCHR | 0o644, "character device"),
        (stat.S_IFBLK | 0o644, "block device"),
        (stat.S_IFIFO | 0o644, "fifo"),
    ],
)
def test_refuses_links_and_special_files(tmp_path, mode, why):
    archive = _zip_with_mode(tmp_path / "bad.zip", "data/link", mode, b"/etc/passwd")
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=why) as err:
        extract_zip(archive, dest)
    assert "'data/link'" in str(err.value)
    _assert_nothing_left(dest)


def test_regular_unix_mode_is_accepted(tmp_path):
    archive = _zip_with_mode(tmp_path / "ok.zip", "data/file.txt", stat.S_IFREG | 0o644)
    assert (extract_zip(archive, tmp_path / "out")[-1]).read_bytes() == b"target"


def test_refuses_too_many_entries(tmp_path):
    archive = _zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(5)})
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="5 entries exceed the limit of 4"):
        extract_zip(archive, dest, limits=ArchiveLimits(max_entries=4))
    _assert_nothing_left(dest)
    assert len(extract_zip(archive, dest, limits=ArchiveLimits(max_entries=5))) == 5


def test_refuses_too_many_declared_bytes(tmp_path):
    archive = _zip(tmp_path / "big.zip", {"a.bin": b"x" * 60, "b.bin": b"y" * 60})
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"more than 100 bytes.*'b\.bin'"):
        extract_zip(archive, dest, limits=ArchiveLimits(max_total_bytes=100))
    _assert_nothing_left(dest)


def _lie_about_size(path: Path, declared: int) -> None:
    """Rewrite the uncompressed size in the local and central headers of a one-entry zip."""
    raw = bytearray(path.read_bytes())
    local = raw.index(b"PK\x03\x04")
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)
    struct.pack_into("<I", raw, central + 24, declared)
    path.write_bytes(bytes(raw))


def test_refuses_an_entry_larger_than_its_header_says(tmp_path):
    archive = _zip(tmp_path / "liar.zip", {"a.bin": b"z" * 5000}, compression=zipfile.ZIP_DEFLATED)
    _lie_about_size(archive, 10)
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("a.bin").file_size == 10  # the lie is what a reader sees up front
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"'a\.bin' refused"):
        extract_zip(archive, dest, limits=ArchiveLimits(max_total_bytes=100))
    _assert_nothing_left(dest)


def test_counts_real_bytes_whatever_the_zip_reader_returns(tmp_path, monkeypatch):
    # CPython's reader stops at the declared size; the byte count must not rely on that.
    archive = _zip(tmp_path / "liar.zip", {"a.bin": b"0123456789"})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: io.BytesIO(b"x" * 1000))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="more than the 10 bytes its header declares"):
        extract_zip(archive, dest)
    _assert_nothing_left(dest)


def test_refuses_a_zip_bomb_ratio(tmp_path):
    archive = _zip(
        tmp_path / "bomb.zip", {"zeros.bin": bytes(2 * 2**20)}, compression=zipfile.ZIP_DEFLATED
    )
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="zip bomb"):
        extract_zip(archive, dest)
    _assert_nothing_left(dest)
    assert (
        extract_zip(archive, dest, limits=ArchiveLimits(max_ratio=None))[0].stat().st_size
        == 2 * 2**20
    )


def test_refuses_duplicate_paths(tmp_path):
    archive = tmp_path / "dup.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", b"first")
        zf.writestr("a.txt", b"second")
    with pytest.raises(DataError, match="twice"):
        extract_zip(archive, tmp_path / "out")


@pytest.mark.parametrize("content", [b"just some text, not a zip", b""])
def test_refuses_what_is_not_a_zip(tmp_path, content):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(content)
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="not a readable zip") as err:
        extract_zip(fake, dest)
    assert str(fake) in str(err.value)
    _assert_nothing_left(dest)


def test_refuses_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="not a readable zip"):
        extract_zip(tmp_path / "missing.zip", tmp_path / "out")


def test_refuses_a_corrupt_entry(tmp_path):
    archive = _zip(tmp_path / "c.zip", {"a.txt": b"hello world " * 100})
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"hello world")
    raw[at : at + 5] = b"HELLO"  # stored data no longer matches its CRC
    archive.write_bytes(bytes(raw))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"'a\.txt' refused: the entry is corrupt"):
        extract_zip(archive, dest)
    _assert_nothing_left(dest)


def test_refuses_a_file_where_a_folder_must_go(tmp_path):
    archive = _zip(tmp_path / "clash.zip", {"a": b"file", "a/b.txt": b"under a file"})
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"'a/b\.txt' refused: cannot be written"):
        extract_zip(archive, dest)
    _assert_nothing_left(dest)


def test_refuses_a_bomb_split_into_entries_of_1_mib_each(tmp_path):
    # Each entry is 1 MiB, within the per-entry grace; the archive as a whole inflates ~900x.
    archive = _zip(
        tmp_path / "split.zip",
        {f"d/{i}.png": bytes(2**20) for i in range(8)},
        compression=zipfile.ZIP_DEFLATED,
    )
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"declare 8388608 bytes uncompressed in a \d+-byte") as err:
        extract_zip(archive, dest)
    assert "more than 100x; $DEITKIT_ZIP_MAX_RATIO); this looks like a zip bomb" in str(err.value)
    _assert_nothing_left(dest)
    assert len(extract_zip(archive, dest, limits=ArchiveLimits(max_ratio=1000))) == 8


def test_limits_come_from_the_environment(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(5)})
    monkeypatch.setenv("DEITKIT_ZIP_MAX_ENTRIES", "4")
    monkeypatch.setenv("DEITKIT_ZIP_MAX_BYTES", "1000")
    monkeypatch.setenv("DEITKIT_ZIP_MAX_RATIO", "2.5")
    assert archive_limits_from_env() == ArchiveLimits(4, 1000, 2.5)
    with pytest.raises(DataError, match=r"5 entries exceed the limit of 4 \(\$DEITKIT_ZIP_MAX_E"):
        extract_zip(archive, tmp_path / "out")
    monkeypatch.setenv("DEITKIT_ZIP_MAX_RATIO", "0.5")
    with pytest.raises(ConfigError, match=r"DEITKIT_ZIP_MAX_RATIO='0\.5' is invalid"):
        extract_zip(archive, tmp_path / "out")
    monkeypatch.delenv("DEITKIT_ZIP_MAX_RATIO")
    monkeypatch.setenv("DEITKIT_ZIP_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="expected an integer >= 1"):
        archive_limits_from_env()


def test_refuses_what_does_not_fit_on_the_disk(tmp_path, monkeypatch):
    import shutil

    archive = _zip(tmp_path / "a.zip", {"a.bin": b"x" * 600})
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=500))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"declare 600 bytes uncompressed, more than the 500 bytes"):
        extract_zip(archive, dest)
    _assert_nothing_left(dest)


@pytest.mark.timeout(20)
def test_refuses_a_fifo_without_opening_it(tmp_path):
    import os

    os.mkfifo(tmp_path / "data.zip")
    with pytest.raises(DataError, match=r"data\.zip: is a FIFO, not a regular file"):
        extract_zip(tmp_path / "data.zip", tmp_path / "out")
