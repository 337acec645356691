"""deitkit's cache folder: extracted zips, staged Azure uploads, images fetched from datastores."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$DEITKIT_CACHE/PARTS`, else `$XDG_CACHE_HOME/deitkit/PARTS` or `~/.cache/deitkit/PARTS`."""
    if env := os.environ.get("DEITKIT_CACHE"):
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deitkit"
    return root.joinpath(*parts)
