"""Chosen sections of a written report, as HTML a notebook shows inline."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from deitkit.errors import ConfigError

# What a notebook shows by default: the numbers, where the model goes wrong, and how sure it is.
KEY_SECTIONS = ("metrics", "confusion", "calibration", "mistakes")
_STYLE = re.compile(r"<style>.*?</style>", re.DOTALL)


def report_excerpt(path: str | Path, sections: Sequence[str] = KEY_SECTIONS) -> str:
    """The page's style and the `sections` (by id) of the report at `path`, in that order;
    sections the report does not have (thresholds of a multiclass model) are left out.

    Raises:
        ConfigError: `path` is not a report `write_report` wrote.
    """
    path = Path(path)
    try:
        page = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: the report cannot be read: {err}") from None
    style = _STYLE.search(page)
    if style is None:
        raise ConfigError(f"{path}: not an evaluation report (no style block)")
    found = [
        match.group(0)
        for name in sections
        if (match := re.search(rf'<section id="{re.escape(name)}">.*?</section>', page, re.DOTALL))
    ]
    return style.group(0) + "\n" + "\n".join(found)
