"""Output folders a run owns: made fresh, replaced only when a marker file says they are ours."""

from __future__ import annotations

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
