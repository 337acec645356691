"""What batch scoring reads: image files, and CSV tables with an `image` column of base64 text."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deitkit.data.files import MISSING, not_a_file
from deitkit.data.references import is_ignored
from deitkit.errors import ConfigError, DataError
from deitkit.inference.scoring import Item

IMAGE_COLUMN = "image"  # base64 image data, as the packaged model and online endpoint take it
NAME_COLUMN = "file_name"  # optional: names the row in the output; else the row's index
TABLE_SUFFIX = ".csv"
_CHUNK_ROWS = 256  # CSV rows parsed at a time: a few MB of base64 held in memory, never the file


@dataclass(frozen=True)
class _Entry:
    """A file found in the input folder, and why it is not read (empty when it is)."""

    path: Path
    refused: str = ""


class BatchInput:
    """A folder (searched recursively) or one CSV file, read lazily as Items in a stable order.

    An Item's `name` becomes its output row's `file_name`. Folder: every file except hidden
    ones and OS litter (`.DS_Store`, `__MACOSX`), sorted by path relative to the folder; the
    path (with `/`) is the row's `file_name`. Files that are not images are kept, so that they
    get a row saying why they were skipped. A `.csv` file inside the folder is read as a table,
    its rows named `<csv path>:<row>` unless it has a `file_name` column. A CSV given directly
    must have an `image` column; its rows are named by `file_name` or their 0-based row number.

    Only regular files are opened. A FIFO, socket or device gets a row saying what it is (a
    FIFO would block the run forever). A symlink to a file is followed only when its target lies
    inside the folder; a symlink to a folder is never followed (inside the folder, its files
    are scored under their own paths already; outside, they are not the input) and gets a row
    saying so, as do broken links and folders that cannot be listed.

    Raises:
        ConfigError: `path` does not exist, is neither a folder nor a regular .csv file, is a
            folder that cannot be listed, or is a CSV without an `image` column.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        why = not_a_file(self.path)
        if self.path.is_dir():
            self.entries = _list_folder(self.path)
        elif why is None and self.path.suffix.lower() == TABLE_SUFFIX:
            self.entries = [_Entry(self.path)]
            columns = _csv_columns(self.path)
            if IMAGE_COLUMN not in columns:
                raise ConfigError(
                    f"{self.path}: has no {IMAGE_COLUMN!r} column (found: {', '.join(columns)}); "
                    f"expected a CSV with an {IMAGE_COLUMN!r} column of base64 images"
                )
        elif why == MISSING:
            raise ConfigError(f"{self.path}: not found")
        else:
            what = f"{why}; " if why else ""
            raise ConfigError(
                f"{self.path}: {what}expected a folder of images or a .csv file with an "
                f"{IMAGE_COLUMN!r} column of base64 images"
            )
        self._count: int | None = None

    @property
    def is_table(self) -> bool:
        return not self.path.is_dir()

    def __len__(self) -> int:
        """Number of items (reads every CSV once to count its rows)."""
        if self._count is None:
            self._count = sum(_count_rows(e.path) if _is_table(e) else 1 for e in self.entries)
        return self._count

    def __iter__(self) -> Iterator[Item]:
        if self.is_table:
            yield from table_items(self.path, prefix="")
            return
        for entry in self.entries:
            name = entry.path.relative_to(self.path).as_posix()
            if entry.refused:
                yield Item(name, error=entry.refused)
            elif _is_table(entry):
                yield from table_items(entry.path, prefix=f"{name}:")
            else:
                yield Item(name, path=entry.path)


def path_items(paths: Sequence[str | Path]) -> Iterator[Item]:
    """Items for a list of files (an Azure ML mini-batch): images by base name, CSVs by row.

    A path that is not a regular file (a FIFO, a socket, a device) gets an error Item, unread.
    """
    for path in map(Path, paths):
        if (why := not_a_file(path)) is not None:
            yield Item(path.name, error=why)
        elif path.suffix.lower() == TABLE_SUFFIX:
            yield from table_items(path, prefix=f"{path.name}:")
        else:
            yield Item(path.name, path=path)


def table_items(path: Path, *, prefix: str) -> Iterator[Item]:
    """Items for the rows of a CSV file, read in chunks; one error Item if it has no images.

    Raises:
        DataError: the file cannot be parsed as CSV, naming it.
    """
    columns = _csv_columns(path)
    if IMAGE_COLUMN not in columns:
        yield Item(
            prefix.rstrip(":") or path.name,
            error=f"a CSV without an {IMAGE_COLUMN!r} column (found: {', '.join(columns)})",
        )
        return
    wanted = [c for c in (NAME_COLUMN, IMAGE_COLUMN) if c in columns]
    try:
        for chunk in _read_csv(path, usecols=wanted, chunksize=_CHUNK_ROWS):
            yield from frame_items(chunk, prefix=prefix)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot be read as CSV: {err}", path=path) from None


def frame_items(frame: pd.DataFrame, *, prefix: str = "") -> Iterator[Item]:
    """Items for a DataFrame's rows (`image` column, optional `file_name`), named by index.

    Raises:
        ConfigError: the frame has no `image` column.
    """
    if IMAGE_COLUMN not in frame.columns:
        raise ConfigError(
            f"the table has no {IMAGE_COLUMN!r} column (found: "
            f"{', '.join(map(str, frame.columns))}); expected base64 images in {IMAGE_COLUMN!r}"
        )
    names = frame[NAME_COLUMN] if NAME_COLUMN in frame.columns else None
    for position, (index, text) in enumerate(frame[IMAGE_COLUMN].items()):
        name = names.iloc[position] if names is not None else None
        if not isinstance(name, str) or not name.strip():
            name = f"{prefix}{index}"
        yield Item(name, text=text)


def _is_table(entry: _Entry) -> bool:
    return not entry.refused and entry.path.suffix.lower() == TABLE_SUFFIX


def _list_folder(root: Path) -> list[_Entry]:
    """Every entry under `root` except ignored ones, with why it is refused, by relative path."""
    real_root = Path(os.path.realpath(root))
    entries: list[_Entry] = []
    pending = [root]
    # Folder links are listed, never entered (see BatchInput), so a link loop cannot recurse.
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                children = list(listing)
        except OSError as err:
            if folder == root:
                raise ConfigError(f"{root}: cannot be listed: {err.strerror or err}") from None
            entries.append(_Entry(folder, f"folder cannot be listed: {err.strerror or err}"))
            continue
        for child in children:
            path = Path(child.path)
            if is_ignored(path):
                continue
            if child.is_dir(follow_symlinks=False):
                pending.append(path)
            else:
                entries.append(_Entry(path, _refusal(child, real_root)))
    return sorted(entries, key=lambda e: e.path.relative_to(root).as_posix())


def _refusal(child: os.DirEntry, real_root: Path) -> str:
    """Why a folder entry is not read, or "" for a regular file or a link to one inside."""
    if child.is_file(follow_symlinks=False):
        return ""
    if not child.is_symlink():
        # Checked by stat alone: opening a FIFO would block until something writes to it.
        return not_a_file(child.path) or ""
    target = Path(os.path.realpath(child.path))
    where = "inside" if target.is_relative_to(real_root) else "outside"
    if os.path.isdir(child.path):
        if where == "inside":
            return (
                "is a symlink to a folder inside the input folder; not followed (its files "
                "are scored under their own paths)"
            )
        return f"is a symlink to a folder outside the input folder ({target}); not followed"
    if where == "outside" and os.path.exists(child.path):
        return f"is a symlink to a file outside the input folder ({target}); not followed"
    return not_a_file(child.path) or ""


def _read_csv(path: Path, **options) -> pd.DataFrame:
    # Strings throughout, and empty cells stay "" (pandas would make them NaN floats).
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", **options)


def _csv_columns(path: Path) -> list[str]:
    try:
        return [str(c) for c in _read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        return []
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise DataError(f"cannot be read as CSV: {err}", path=path) from None


def _count_rows(path: Path) -> int:
    columns = _csv_columns(path)
    if IMAGE_COLUMN not in columns:
        return 1
    try:
        return sum(len(c) for c in _read_csv(path, usecols=[IMAGE_COLUMN], chunksize=4096))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot be read as CSV: {err}", path=path) from None
