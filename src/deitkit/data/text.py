"""Reading an annotation file as UTF-8 text, with the line of the first bad byte on failure."""

from __future__ import annotations

from pathlib import Path

from deitkit.data.files import MISSING, not_a_file
from deitkit.errors import DataError


def read_text(path: Path) -> str:
    """Return the file's text (UTF-8, a leading byte-order mark dropped).

    Raises:
        DataError: naming the file, and the line, when it is missing, not a regular file (a
            FIFO is not opened: that would wait for a writer forever), or not valid UTF-8.
    """
    if (why := not_a_file(path)) not in (None, MISSING):
        raise DataError(why, path=path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", path=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "save the file as UTF-8",
            path=path,
            line=line,
        ) from None
