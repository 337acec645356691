"""Safe zip extraction: no path escapes, links or device files; capped entries, size and ratio."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from deitkit.data.archive_limits import ArchiveLimits, archive_limits_from_env
from deitkit.data.files import require_file
from deitkit.errors import DataError

__all__ = ["ArchiveLimits", "archive_limits_from_env", "extract_zip"]

# Small entries may compress well (labels.csv) and cannot hurt: the ratio applies above this,
# to each entry and to the whole archive (1,024 entries of 1 MiB of zeros pass one by one).
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
    zip_path: str | Path, dest: str | Path, *, limits: ArchiveLimits | None = None
) -> list[Path]:
    """Extract `zip_path` into `dest` after checking every entry, all or nothing.

    Entries with absolute paths, drive letters or `..` components, symlinks, device files,
    fifos and encrypted entries are refused; `__MACOSX/` and `.DS_Store` are skipped. The
    entry count, the total uncompressed size and the compression ratio of the whole archive
    and of each entry over 1 MiB are capped (see `ArchiveLimits`): first as the headers
    declare them, then as the bytes really come out, since headers can lie. The declared size
    must also fit in the free space where `dest` goes. Files are written into a temporary
    folder beside `dest` that is renamed to `dest` only once everything is extracted, so a
    failure leaves nothing at `dest`.

    Args:
        zip_path: The archive to extract; a regular file (a FIFO is refused, not opened).
        dest: The folder to create; it must not exist or be empty.
        limits: The caps; None: `archive_limits_from_env()` ($DEITKIT_ZIP_MAX_ENTRIES,
            $DEITKIT_ZIP_MAX_BYTES, $DEITKIT_ZIP_MAX_RATIO, else the defaults).

    Returns:
        The extracted files (not folders), in archive order.

    Raises:
        DataError: The archive is not a regular file or not a readable zip, an entry is
            refused, a cap is exceeded, the disk is too small, or `dest` is not an empty
            folder. The message names the zip and the entry.
        ConfigError: a limit variable is invalid.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    limits = limits or archive_limits_from_env()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError("refusing to extract: the destination is not an empty folder", path=dest)
    if os.path.lexists(zip_path):
        require_file(zip_path)  # a FIFO is refused, not opened: opening it waits for a writer
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", path=zip_path) from None
    with archive:
        zip_size = os.fstat(archive.fp.fileno()).st_size if archive.fp else 0
        entries, declared = _checked_entries(archive, zip_path, zip_size, limits)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _check_free_space(zip_path, dest.parent, declared)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        )
        try:
            files = _extract_all(archive, zip_path, entries, staging, limits)
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return [dest.joinpath(*parts) for parts in files]


def _checked_entries(
    archive: zipfile.ZipFile, zip_path: Path, zip_size: int, limits: ArchiveLimits
) -> tuple[list[_Entry], int]:
    """The entries to extract (unsafe ones refused, declared sizes checked), and their total."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise DataError(
            f"{len(infos)} entries exceed the limit of {limits.max_entries} "
            "($DEITKIT_ZIP_MAX_ENTRIES)",
            path=zip_path,
        )
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
            if declared > limits.max_total_bytes:
                raise DataError(
                    f"entries declare more than {limits.max_total_bytes} bytes uncompressed "
                    f"(reached at entry {info.filename!r}; $DEITKIT_ZIP_MAX_BYTES)",
                    path=zip_path,
                )
            _check_ratio(zip_path, info, info.file_size, limits.max_ratio)
        entries.append(entry)
    # No entry may write more than it declares (checked while extracting), so the declared
    # total bounds the real one: checking the archive's ratio here, before writing, is enough.
    _check_archive_ratio(zip_path, declared, zip_size, limits.max_ratio)
    return entries, declared


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
    limits: ArchiveLimits,
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
                    if total > limits.max_total_bytes:
                        raise DataError(
                            f"entries decompress to more than {limits.max_total_bytes} bytes "
                            f"(reached at entry {entry.info.filename!r}; "
                            "$DEITKIT_ZIP_MAX_BYTES)",
                            path=zip_path,
                        )
                    _check_ratio(zip_path, entry.info, written, limits.max_ratio)
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
            f"it inflates {size} bytes from {info.compress_size} (more than {max_ratio:g}x; "
            "$DEITKIT_ZIP_MAX_RATIO); this looks like a zip bomb",
        )


def _check_archive_ratio(zip_path: Path, size: int, zip_size: int, max_ratio: float | None) -> None:
    # Per byte of the zip file itself: headers cannot make that number lie, and it counts
    # every entry, so a bomb split into many small entries is caught as well as one big one.
    if max_ratio is None or size <= _RATIO_GRACE_BYTES:
        return
    if size > max_ratio * max(zip_size, 1):
        raise DataError(
            f"the entries declare {size} bytes uncompressed in a {zip_size}-byte archive "
            f"({size / max(zip_size, 1):.0f}x, more than {max_ratio:g}x; "
            "$DEITKIT_ZIP_MAX_RATIO); this looks like a zip bomb",
            path=zip_path,
        )


def _check_free_space(zip_path: Path, folder: Path, declared: int) -> None:
    free = shutil.disk_usage(folder).free
    if declared > free:
        raise DataError(
            f"the entries declare {declared} bytes uncompressed, more than the {free} bytes "
            f"free in {folder}",
            path=zip_path,
        )


def _refused(zip_path: Path, info: zipfile.ZipInfo, why: str) -> DataError:
    return DataError(f"entry {info.filename!r} refused: {why}", path=zip_path)
