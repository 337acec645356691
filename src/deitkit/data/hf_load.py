"""Loading a `datasets` input with the `datasets` library itself, and picking its split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from deitkit.cache import cache_dir
from deitkit.data.hf_source import (
    ARROW,
    HUB,
    IMAGEFOLDER,
    PARQUET,
    SAVE_TO_DISK,
    HfSource,
    data_files,
)
from deitkit.errors import DataError

if TYPE_CHECKING:
    import datasets

INSTALL_HINT = "pip install deitkit[datasets]"


def require_datasets(source: HfSource):
    """The `datasets` module.

    Raises:
        DataError: it is not installed, saying how to install it.
    """
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"reading a Hugging Face {source.layout} dataset needs the datasets library: "
            f"{INSTALL_HINT}",
            path=source.location,
        ) from None
    return datasets


def load_split(source: HfSource, preferred: tuple[str, ...]) -> tuple[datasets.Dataset, str]:
    """The one split of `source` to read, and its name.

    The split named in PATH:split; else the only split; else the first of `preferred` there.
    `load_dataset`'s own cache goes under deitkit's cache folder, never beside the data.

    Raises:
        DataError: `datasets` is missing, the input cannot be loaded (a one-line reason; for a
            hub id, that it is not on disk and the Hub cannot serve it), or the split is absent.
    """
    datasets = require_datasets(source)
    loaded = _load(datasets, source)
    if isinstance(loaded, datasets.Dataset):
        if source.split not in (None, str(loaded.split or "train")):
            raise DataError(
                f"holds one split ({loaded.split or 'unnamed'}), not {source.split!r}",
                path=source.location,
            )
        return loaded, str(loaded.split or "train")
    names = list(loaded)
    if source.split is not None:
        chosen = source.split
    elif len(names) == 1:
        chosen = names[0]
    else:
        chosen = next((name for name in preferred if name in names), None)
    if chosen is None:
        raise DataError(
            f"has splits {', '.join(names)} and none of {', '.join(preferred)}; name the one "
            "to read as PATH:split",
            path=source.location,
        )
    if chosen not in names:
        where = source.location
        raise DataError(f"has no split {chosen!r} (splits: {', '.join(names)})", path=where)
    return loaded[chosen], chosen


def _load(datasets, source: HfSource):
    cache = str(cache_dir("hf-datasets"))
    path = source.path
    try:
        if source.layout == SAVE_TO_DISK:
            return datasets.load_from_disk(str(path))
        if source.layout == IMAGEFOLDER:
            return datasets.load_dataset("imagefolder", data_dir=str(path), cache_dir=cache)
        if source.layout in (PARQUET, ARROW):
            if path.is_dir():
                # data_dir lets `datasets` name the splits from the file names (train-*.parquet).
                return datasets.load_dataset(source.layout, data_dir=str(path), cache_dir=cache)
            return datasets.load_dataset(
                source.layout, data_files={"train": [str(path)]}, cache_dir=cache
            )
        return _load_hub(datasets, source, cache)
    except DataError:
        raise
    except Exception as err:  # datasets raises many kinds; the user needs the one line
        raise DataError(
            f"cannot load the {source.layout} dataset: {_first_line(err)}", path=source.location
        ) from None


def _load_hub(datasets, source: HfSource, cache: str):
    assert source.layout == HUB
    try:
        return datasets.load_dataset(source.location, cache_dir=cache)
    except Exception as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set" if offline else _first_line(err)
        raise DataError(
            f"no such file or folder, and not loadable as a Hugging Face Hub dataset ({why})",
            path=source.location,
        ) from None


def files_of(source: HfSource) -> list[Path]:
    """The data files a parquet or arrow input reads (for error messages naming a file)."""
    if source.layout not in (PARQUET, ARROW):
        return []
    path = source.path
    return data_files(path, "." + source.layout) if path.is_dir() else [path]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
