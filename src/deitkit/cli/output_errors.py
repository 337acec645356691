"""OS errors on a command's outputs become one-line user errors; other OS errors stay bugs.

A read-only output folder, a full disk or an output path under a regular file is the user's
to fix, and a traceback only hides the one line that matters: which path, and why. So when a
command fails with an OSError whose errno describes such a condition of the file system and
whose path is one of the command's outputs (the path given to `--output`/`--out`, a file or
folder under it, a sibling beside it such as its staging file, or a folder above it that had
to be created), it is raised again as `OutputError` (`error: PATH: why`, exit 2). Everything
else keeps its traceback: `FileNotFoundError` on a file deitkit itself should have written is
a bug, and so is any OS error on a path the user did not name. Writing stdout fails the same
way when it is redirected to a full disk; that is reported as `<stdout>`.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from deitkit.errors import OutputError

# The parameter names under which commands take their outputs (`--output`, `--out`).
OUTPUT_PARAMS = ("output", "out_dir")

# Conditions of the file system that the user fixes, rather than faults of deitkit.
_USER_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EEXIST,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOTEMPTY,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EMLINK,
        errno.EIO,
        errno.EBUSY,
        errno.ETXTBSY,
    }
)


class OutputErrorContext(click.Context):
    """A click context whose command's OS errors on its outputs become `OutputError`."""

    def invoke(self, callback: Any, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().invoke(callback, *args, **kwargs)
        except OSError as err:
            converted = as_output_error(err, self.params)
            if converted is None:
                raise
            raise converted from err


def use_everywhere(command: click.Command) -> None:
    """Give `command` and every command under it an `OutputErrorContext`."""
    command.context_class = OutputErrorContext
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            use_everywhere(sub)


def as_output_error(err: OSError, params: dict[str, Any]) -> OutputError | None:
    """The OutputError that `err` stands for, or None when it is not about an output."""
    if err.errno not in _USER_ERRNOS:
        return None
    why = err.strerror or str(err)
    if err.filename is None:
        if _raised_writing_stdout(err):
            _silence_stdout()
            return OutputError(f"<stdout>: {why}")
        return None
    outputs = {name: params[name] for name in OUTPUT_PARAMS if params.get(name)}
    for name, output in outputs.items():
        for filename in (err.filename, err.filename2):
            if filename is None:
                continue
            path = os.fsdecode(filename)
            if not _concerns(path, os.fspath(output)):
                continue
            flag = "--" + name.split("_")[0]
            if (in_the_way := _file_in_the_way(err, path, os.fspath(output))) is not None:
                # mkdir says "File exists" or "Not a directory"; this says which file, and why.
                path, why = in_the_way, "is a file, where a folder has to be created"
            return OutputError(f"{path}: {why} (writing {flag} {output})")
    return None


def _file_in_the_way(err: OSError, path: str, output: str) -> str | None:
    """The file that stands where a folder of the output has to go, if that is what failed."""
    if err.errno == errno.EEXIST:
        # Only a folder above the output: "File exists" on a file itself is another story
        # (an exclusive create that found one).
        above = Path(os.path.abspath(path)) in Path(os.path.abspath(output)).parents
        return path if above and not os.path.isdir(path) else None
    if err.errno == errno.ENOTDIR:
        for folder in [*reversed(Path(path).parents), Path(path)]:
            if os.path.lexists(folder) and not os.path.isdir(folder):
                return str(folder)
    return None


def _concerns(filename: str, output: str) -> bool:
    """True when `filename` is `output`, lies under it or beside it, or is a folder above it."""
    for path, out in zip(_forms(filename), _forms(output), strict=True):
        if path == out or out in path.parents or path in out.parents or path.parent == out.parent:
            return True
    return False


def _forms(path: str) -> Iterable[Path]:
    """The path as written (made absolute) and with every symlink resolved."""
    return (Path(os.path.abspath(path)), Path(os.path.realpath(path)))


def _raised_writing_stdout(err: OSError) -> bool:
    """True when `err` was raised writing to stdout (`click.echo`'s `file` is stdout)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return any(_is_stdout(value) for value in tb.tb_frame.f_locals.values())


def _is_stdout(value: object) -> bool:
    if value is sys.stdout or value is sys.__stdout__:
        return True
    try:
        return callable(getattr(value, "write", None)) and value.fileno() == 1  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the text stuck in its buffer fails no second time at exit."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a real file (a test's capture): nothing flushes it at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
