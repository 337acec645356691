"""What batch scoring reads: image files, and CSV tables with an `image` column of base64 text."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from deitkit.data.references import is_ignored
from deitkit.errors import ConfigError, DataError
from deitkit.inference.scoring import Item

IMAGE_COLUMN = "image"  # base64 image data, as the packaged model and online endpoint take it
NAME_COLUMN = "file_name"  # optional: names the row in the output; else the row's index
TABLE_SUFFIX = ".csv"
_CHUNK_ROWS = 256  # CSV rows parsed at a time: a few MB of base64 held in memory, never the file


class BatchInput:
    """A folder (searched recursively) or one CSV file, read lazily as Items in a stable order.

    An Item's `name` becomes its output row's `file_name`. Folder: every file except hidden
    ones and OS litter (`.DS_Store`, `__MACOSX`), sorted by path relative to the folder; the
    path (with `/`) is the row's `file_name`. Files that are not images are kept, so that they
    get a row saying why they were skipped. A `.csv` file inside the folder is read as a table,
    its rows named `<csv path>:<row>` unless it has a `file_name` column. A CSV given directly
    must have an `image` column; its rows are named by `file_name` or their 0-based row number.

    Raises:
        ConfigError: `path` does not exist, is neither a folder nor a .csv file, or is a CSV
            without an `image` column.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self.files = _list_folder(self.path)
        elif self.path.is_file() and self.path.suffix.lower() == TABLE_SUFFIX:
            self.files = [self.path]
            columns = _csv_columns(self.path)
            if IMAGE_COLUMN not in columns:
                raise ConfigError(
                    f"{self.path}: has no {IMAGE_COLUMN!r} column (found: {', '.join(columns)}); "
                    f"expected a CSV with an {IMAGE_COLUMN!r} column of base64 images"
                )
        elif self.path.exists():
            raise ConfigError(
                f"{self.path}: expected a folder of images or a .csv file with an "
                f"{IMAGE_COLUMN!r} column of base64 images"
            )
        else:
            raise ConfigError(f"{self.path}: not found")
        self._count: int | None = None

    @property
    def is_table(self) -> bool:
        return not self.path.is_dir()

    def __len__(self) -> int:
        """Number of items (reads every CSV once to count its rows)."""
        if self._count is None:
            self._count = sum(
                _count_rows(f) if f.suffix.lower() == TABLE_SUFFIX else 1 for f in self.files
            )
        return self._count

    def __iter__(self) -> Iterator[Item]:
        if self.is_table:
            yield from table_items(self.path, prefix="")
            return
        for file in self.files:
            name = file.relative_to(self.path).as_posix()
            if file.suffix.lower() == TABLE_SUFFIX:
                yield from table_items(file, prefix=f"{name}:")
            else:
                yield Item(name, path=file)


def path_items(paths: Sequence[str | Path]) -> Iterator[Item]:
    """Items for a list of files (an Azure ML mini-batch): images by base name, CSVs by row."""
    for path in map(Path, paths):
        if path.suffix.lower() == TABLE_SUFFIX:
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


def _list_folder(root: Path) -> list[Path]:
    files = []
    # os.walk does not follow symlinked folders, so a link loop cannot recurse forever.
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not is_ignored(Path(d))]
        files.extend(Path(folder, n) for n in names if not is_ignored(Path(n)))
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


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
