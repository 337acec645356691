"""Images a `datasets` dataset embeds as bytes, written once as files into deitkit's cache.

deitkit's pipeline reads image files, so each embedded image becomes
`$DEITKIT_CACHE/hf-images/<key>/<split>-<row><ext>`. The key hashes the dataset's fingerprint,
split, column and data files (names, sizes, modification times): a re-read of unchanged data
reuses the files, changed data gets a new folder. Nothing is written beside the user's data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from deitkit.cache import cache_dir
from deitkit.data.references import is_image_name

_SUFFIXES = {"JPEG": ".jpg", "TIFF": ".tif"}


class ImageStaging:
    """The cache folder of one dataset split's embedded images."""

    def __init__(self, dataset, split: str, column: str):
        files = []
        for entry in getattr(dataset, "cache_files", None) or []:
            name = entry["filename"]
            stat = os.stat(name)
            files.append([name, stat.st_size, stat.st_mtime_ns])
        # _fingerprint: datasets' own hash of the data and every transform applied to it.
        identity = [getattr(dataset, "_fingerprint", None), split, column, files]
        key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
        self.folder = cache_dir("hf-images", key)
        self.split = split

    def file_for(self, row: int, data: bytes, name: str | None) -> Path:
        """The file holding `data` (row `row`), written now unless an earlier read wrote it."""
        path = self.folder / f"{self.split}-{row}{_suffix(data, name)}"
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            # Written whole under a temporary name, then renamed: a second rank reading the same
            # dataset at once, or a killed run, never leaves half an image under the real name.
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, path)
        return path


def _suffix(data: bytes, name: str | None) -> str:
    """The image's own file extension where its path has one, else its format's; `.bin` if none."""
    if name and is_image_name(Path(name)):
        return Path(name).suffix.lower()
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            fmt = image.format or ""
    except (UnidentifiedImageError, OSError, ValueError):
        return ".bin"  # the image check reports it as unreadable, as for any broken file
    return _SUFFIXES.get(fmt, f".{fmt.lower()}" if fmt else ".bin")
