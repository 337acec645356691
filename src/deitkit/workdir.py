"""Output folders a run owns: made fresh, replaced only when marked ours; files written whole."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from deitkit.errors import ConfigError


def fresh_folder(root: str | Path, *, marker: str, what: str) -> Path:
    """Create `root` empty, holding only `marker`; a folder with `marker` is replaced.

    Anything else at `root` belongs to the user and is left untouched.

    Args:
        root: The folder.
        marker: File name that marks the folder as an earlier run's output.
        what: What wrote it, for the error (`a previous quickstart output`).

    Raises:
        ConfigError: `root` exists and does not hold `marker`.
    """
    root = Path(root)
    if root.exists():
        if not (root / marker).exists():
            raise ConfigError(f"{root} exists and is not {what}; choose another folder")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / marker).touch()
    return root


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a staging file renamed into place.

    Another process (a second rank of a distributed run) never reads half a file; the staging
    file is named so that `is_staging` recognises it.
    """
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def is_staging(path: Path) -> bool:
    """True for a file `write_text_atomically` has not renamed into place yet."""
    return path.name.startswith(".") and path.name.endswith(".tmp")
