"""Errors meant for the user: each says what was wrong and where, printed without a traceback."""

from __future__ import annotations

from pathlib import Path


class DeitkitError(Exception):
    """Base class for every error deitkit reports to a user (CLI exit code 2, HTTP 4xx)."""


class ConfigError(DeitkitError):
    """A flag, option or combination of them is invalid."""


class DataError(DeitkitError):
    """A dataset file or entry is invalid; the message starts with `path:line:` where known."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = self.path or ""
        if where and line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class ImageError(DeitkitError):
    """An image cannot be used (unreadable, unsupported, too big or small); `source` names it."""

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}" if source else message)


class OutputError(DeitkitError):
    """An output cannot be written: a read-only folder, a full disk, a file where a folder goes."""
