"""What a path is before anything opens it: only regular files are read, links stay inside.

Opening a FIFO blocks until something writes to it, a character device such as /dev/zero never
ends, and a socket cannot be read at all; so every reader of user folders asks `os.stat` (which
opens nothing) first and reports such an entry by what it is instead of reading it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from deitkit.errors import DataError

_KINDS = {
    stat.S_IFREG: "a regular file",
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symlink",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


MISSING = "does not exist"  # what `not_a_file` says of a path with nothing there


def kind_of(mode: int) -> str:
    """`a FIFO`, `a socket`, `a character device`, ... for an `st_mode`."""
    return _KINDS.get(stat.S_IFMT(mode), f"a special file (type 0o{stat.S_IFMT(mode):o})")


def not_a_file(path: str | Path) -> str | None:
    """Why `path` (symlinks followed) cannot be read as a file; None for a regular file.

    The reason reads after the path's name: `is a FIFO, not a regular file`, `is a broken
    symlink ...`, `is a symlink to a socket, not a regular file`, `does not exist` (`MISSING`).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return "is a broken symlink (its target does not exist)"
        return MISSING
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symlink loop"
        return f"cannot be examined: {err.strerror or err}"
    if stat.S_ISREG(mode):
        return None
    through = "a symlink to " if os.path.islink(path) else ""
    return f"is {through}{kind_of(mode)}, not a regular file"


def require_file(path: str | Path) -> None:
    """Raise unless `path` (symlinks followed) is a regular file.

    Raises:
        DataError: naming the path and what it is instead (see `not_a_file`).
    """
    if (why := not_a_file(path)) is not None:
        raise DataError(why, path=path)
