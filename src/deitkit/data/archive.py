"""Safe zip extraction: no path escapes, links or device files; capped entry count and size."""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from deitkit.errors import DataError

# Apache POI's ZipSecureFile refuses entries that inflate more than 100x; real image data
# (JPEG/PNG) barely compresses, so only a bomb gets near that.
DEFAULT_MAX_RATIO = 100.0
# Small entries may compress well (labels.csv) and cannot hurt: the ratio applies above this.
_RATIO_GRACE_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20
_SKIPPED_DIRS = frozenset({"__MACOSX"})
_SKIPPED_FILES = frozenset({".DS_Store"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_SPECIAL_FILE_TYPES = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a fifo",
    stat.S_IFSOCK: "a socket",
}
# What a corrupt, truncated or unsupported entry raises while being read.
_READ_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def extract_zip(
    zip_path: str | Path,
    dest: str | Path,
    *,
    max_entries: int = 100_000,
    max_total_bytes: int = 20 * 2**30,
    max_ratio: float | None = DEFAULT_MAX_RATIO,
) -> list[Path]:
    """Extract `zip_path` into `dest` after checking every entry, all or nothing.

    Entries with absolute paths, drive letters or `..` components, symlinks, device files,
    fifos and encrypted entries are refused; `__MACOSX/` and `.DS_Store` are skipped. The
    entry count, the total uncompressed size (declared up front and counted while streaming,
    since headers can lie) and, above 1 MiB, each entry's compression ratio are capped.
    Files are written into a temporary folder beside `dest` that is renamed to `dest` only
    once everything is extracted, so a failure leaves nothing at `dest`.

    Args:
        zip_path: The archive to extract.
        dest: The folder to create; it must not exist or be empty.
        max_entries: Most entries (files and folders) the archive may hold.
        max_total_bytes: Most bytes all entries may decompress to.
        max_ratio: Most an entry may inflate (uncompressed / compressed size); None: no cap.

    Returns:
        The extracted files (not folders), in archive order.

    Raises:
        DataError: The archive is not a readable zip, an entry is refused, a cap is exceeded,
            or `dest` is not an empty folder. The message names the zip and the entry.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError("refusing to extract: the destination is not an empty folder", path=dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", path=zip_path) from None
    with archive:
        entries = _checked_entries(archive, zip_path, max_entries, max_total_bytes, max_ratio)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        )
        try:
            files = _extract_all(archive, zip_path, entries, staging, max_total_bytes, max_ratio)
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return [dest.joinpath(*parts) for parts in files]


def _checked_entries(
    archive: zipfile.ZipFile,
    zip_path: Path,
    max_entries: int,
    max_total_bytes: int,
    max_ratio: float | None,
) -> list[_Entry]:
    """Every entry to extract, after refusing the unsafe ones and checking declared sizes."""
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise DataError(f"{len(infos)} entries exceed the limit of {max_entries}", path=zip_path)
    entries: list[_Entry] = []
    seen: set[tuple[str, ...]] = set()
    declared = 0
    for info in infos:
        entry = _checked_entry(info, zip_path)
        if entry is None:
            continue
        if not entry.is_dir:
            if entry.parts in seen:
                raise _refused(zip_path, info, "the archive holds this path twice")
            seen.add(entry.parts)
            declared += info.file_size
            if declared > max_total_bytes:
                raise DataError(
                    f"entries declare more than {max_total_bytes} bytes uncompressed "
                    f"(reached at entry {info.filename!r})",
                    path=zip_path,
                )
            _check_ratio(zip_path, info, info.file_size, max_ratio)
        entries.append(entry)
    return entries


def _checked_entry(info: zipfile.ZipInfo, zip_path: Path) -> _Entry | None:
    """The entry's safe relative path, None for skipped entries; DataError for unsafe ones."""
    # Zips made on Windows may use backslashes; treat them as separators so `..\x` is caught.
    name = info.filename.replace("\\", "/")
    if "\x00" in name:
        raise _refused(zip_path, info, "the name contains a NUL character")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refused(zip_path, info, "absolute paths are not allowed")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise _refused(zip_path, info, "'..' path components are not allowed")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _refused(zip_path, info, "symbolic links are not allowed")
    if stat.S_IFMT(mode) in _SPECIAL_FILE_TYPES:
        kind = _SPECIAL_FILE_TYPES[stat.S_IFMT(mode)]
        raise _refused(zip_path, info, f"the entry is {kind}; only files and folders are allowed")
    if info.flag_bits & 0x1:
        raise _refused(zip_path, info, "encrypted entries are not supported")
    if not parts or _SKIPPED_DIRS.intersection(parts) or parts[-1] in _SKIPPED_FILES:
        return None
    return _Entry(info=info, parts=parts, is_dir=info.is_dir() or stat.S_ISDIR(mode))


def _extract_all(
    archive: zipfile.ZipFile,
    zip_path: Path,
    entries: list[_Entry],
    staging: Path,
    max_total_bytes: int,
    max_ratio: float | None,
) -> list[tuple[str, ...]]:
    """Stream every entry into `staging`, counting real bytes; the relative paths of files."""
    files: list[tuple[str, ...]] = []
    total = 0
    for entry in entries:
        target = staging.joinpath(*entry.parts)
        try:
            if entry.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            # "xb": never write through anything already there.
            with archive.open(entry.info) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK_BYTES):
                    written += len(chunk)
                    total += len(chunk)
                    if written > entry.info.file_size:
                        raise _refused(
                            zip_path,
                            entry.info,
                            f"it decompresses to more than the {entry.info.file_size} bytes "
                            "its header declares",
                        )
                    if total > max_total_bytes:
                        raise DataError(
                            f"entries decompress to more than {max_total_bytes} bytes "
                            f"(reached at entry {entry.info.filename!r})",
                            path=zip_path,
                        )
                    _check_ratio(zip_path, entry.info, written, max_ratio)
                    out.write(chunk)
        except _READ_ERRORS as exc:
            raise _refused(
                zip_path, entry.info, f"the entry is corrupt or unsupported ({exc})"
            ) from None
        except OSError as exc:
            raise _refused(
                zip_path, entry.info, f"cannot be written ({exc.strerror or exc})"
            ) from None
        files.append(entry.parts)
    return files


def _check_ratio(zip_path: Path, info: zipfile.ZipInfo, size: int, max_ratio: float | None) -> None:
    if max_ratio is None or size <= _RATIO_GRACE_BYTES:
        return
    if size > max_ratio * max(info.compress_size, 1):
        raise _refused(
            zip_path,
            info,
            f"it inflates {size} bytes from {info.compress_size} (more than {max_ratio:g}x); "
            "this looks like a zip bomb",
        )


def _refused(zip_path: Path, info: zipfile.ZipInfo, why: str) -> DataError:
    return DataError(f"entry {info.filename!r} refused: {why}", path=zip_path)
