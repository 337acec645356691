"""Output folders a run owns: made fresh, replaced only when marked ours; files written whole."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
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


STAGING_PREFIX = ".staging-"


@contextlib.contextmanager
def staged_output(output: str | Path, *, last: str) -> Iterator[Path]:
    """Write a command's output folder whole: yield a staging folder inside `output`, then move
    its entries into `output`, `last` last (its presence marks a complete output).

    `output` may be missing or empty (Azure ML mounts outputs as empty folders); staging
    folders an interrupted run left are ours and are removed. Anything else in it belongs to
    the user: the run is refused before any work. On failure nothing is left behind.

    Raises:
        ConfigError: `output` is a file, or a folder holding anything but staging leftovers.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output}: exists and is a file; --output must be a new folder")
    existing = sorted(output.iterdir()) if output.is_dir() else []
    if any(not entry.name.startswith(STAGING_PREFIX) for entry in existing):
        raise ConfigError(
            f"{output}: exists and is not empty; choose a new folder (nothing in it is replaced)"
        )
    created = not output.exists()
    for leftover in existing:
        shutil.rmtree(leftover)
    staging = output / f"{STAGING_PREFIX}{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        yield staging
        entries = sorted(staging.iterdir(), key=lambda entry: entry.name == last)
        for entry in entries:
            os.replace(entry, output / entry.name)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(output, ignore_errors=True)
        raise
