"""Where the Azure submit path stages what it uploads: deitkit's cache, each copy written whole."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from deitkit.cache import cache_dir


def staging_dir(*parts: str) -> Path:
    """`$DEITKIT_CACHE/azure/PARTS` (else `$XDG_CACHE_HOME/deitkit/...`, `~/.cache/deitkit/...`).

    The same cache `deitkit data` extracts zips into; what was uploaded stays there to be read.
    """
    return cache_dir("azure", *parts)


def write_folder(dest: Path, write: Callable[[Path], object], *, replace: bool) -> Path:
    """`dest` filled by `write(folder)` in a sibling temporary folder, then renamed into place.

    A reader never sees a half-written folder. An existing `dest` is kept as it is (content-
    addressed copies) unless `replace`, when it gives way to the new one.
    """
    if dest.is_dir() and not replace:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        write(staging)
        if replace and dest.is_dir():
            shutil.rmtree(dest)
        try:
            os.replace(staging, dest)
        except OSError:
            if replace or not dest.is_dir():
                raise
            # Another run wrote the same content-addressed copy first; theirs is as good.
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after the rename
    return dest
