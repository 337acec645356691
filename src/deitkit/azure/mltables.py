"""MLTable folders as an Azure job receives them: only the folder uploads, so URLs must reach out.

Azure uploads an `mltable` job input's folder and nothing beside it, so a JSONL `image_url`
is readable there only when it is a path inside that folder or a URL the job fetches. The
`mltable` package's `stream_info` conversion (the one Azure's samples write) was checked
with mltable 1.7.0: long-form `azureml://subscriptions/.../datastores/<ds>/paths/<p>`,
`https://`, `http://`, `wasbs://` and `abfss://` URLs become streams; relative paths,
absolute paths and short-form `azureml://datastores/...` URLs become None. deitkit's
components fetch long-form `azureml://` URLs only (`deitkit.data.datastore`), so those and
paths inside the folder are what a submission may hold.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.data.importer import TRAIN_MLTABLE_DIR, VALIDATION_MLTABLE_DIR
from deitkit.data.mltable import MLTABLE_FILE, read_mltable_spec
from deitkit.data.text import read_text
from deitkit.errors import ConfigError, DataError

# The one URL form deitkit's components fetch images from in a job (and Azure's mltable reads).
LONG_AZUREML_URL = re.compile(
    r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/datastores/[^/]+/paths/.",
    re.I,
)
UPLOAD_FIX = (
    "upload the images first with `deitkit azure data upload {data} --name NAME`{what} and "
    "pass the azureml:NAME-training:VERSION / NAME-validation:VERSION it prints"
)
IMPORTED = (TRAIN_MLTABLE_DIR, VALIDATION_MLTABLE_DIR)  # what `deitkit data import` writes
_SCHEME = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]+):", re.I)


@dataclass(frozen=True)
class Row:
    """One JSONL annotation: the file and line it came from and the object on that line."""

    file: Path
    line: int
    value: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file.name} line {self.line}"


def rows(folder: Path) -> Iterator[Row]:
    """The JSON objects of every JSONL file the MLTable in `folder` reads, in order.

    Raises:
        DataError: the MLTable file, or a JSONL file, cannot be read, or a line is not a
            JSON object (the message names the file and line).
    """
    spec = read_mltable_spec(folder)
    for jsonl in spec.jsonl_files:
        yield from _jsonl_rows(jsonl, drop_invalid=spec.invalid_lines == "drop")


def check_uploadable(folder: Path, *, flag: str) -> None:
    """Refuse an MLTable folder whose images Azure would not find once the folder is uploaded.

    Accepted: each `image_url` a long-form `azureml://` datastore URL, or a relative path that
    stays inside `folder`; the JSONL files themselves inside `folder`.

    Raises:
        ConfigError: one line naming the first row that leaves the folder, and the fix.
    """
    try:
        spec = read_mltable_spec(folder)
        for jsonl in spec.jsonl_files:
            if not _inside(jsonl, folder):
                raise ConfigError(
                    f"{flag} {folder}: {MLTABLE_FILE} reads {jsonl}, outside the folder, and "
                    f"Azure uploads only the folder; {upload_fix(folder)}"
                )
        for row in rows(folder):
            url = row.value.get("image_url")
            problem = _problem(url, row.file.parent, folder) if isinstance(url, str) else None
            if problem:
                raise ConfigError(f"{flag} {folder}: {row.where}: image_url {url!r} {problem}")
    except DataError as err:
        raise ConfigError(f"{flag}: {err}") from None


def upload_fix(folder: Path) -> str:
    """How to make `folder`'s images reachable: name the import folder when it is one."""
    parent = folder.absolute().parent
    if folder.name in IMPORTED and all((parent / n / MLTABLE_FILE).is_file() for n in IMPORTED):
        return UPLOAD_FIX.format(data=parent, what="")
    return UPLOAD_FIX.format(data="DATA", what=" (DATA: a folder `deitkit data import` wrote)")


def rewrite(source: Path, dest: Path, *, images: Path, images_url: str) -> int:
    """Write `dest`: `source`'s MLTable file, and its JSONL with image_url under `images_url`.

    Each row's image (a path relative to its JSONL file, inside `images`) becomes
    `images_url` + its path inside `images`, as Azure's fridgeObjects sample writes them;
    every other key is kept. `dest` must not exist. Returns the number of rows.

    Raises:
        DataError: a row's image_url is not a relative path to a file inside `images`.
    """
    base = images_url if images_url.endswith("/") else images_url + "/"
    dest.mkdir(parents=True)
    spec = read_mltable_spec(source)
    (dest / MLTABLE_FILE).write_bytes(spec.file.read_bytes())
    count = 0
    for jsonl in spec.jsonl_files:
        lines = []
        for row in _jsonl_rows(jsonl, drop_invalid=spec.invalid_lines == "drop"):
            path = _image_path(row, images)
            value = {**row.value, "image_url": base + path.relative_to(images).as_posix()}
            lines.append(json.dumps(value, ensure_ascii=False) + "\n")
        (dest / jsonl.relative_to(source)).write_text("".join(lines), encoding="utf-8")
        count += len(lines)
    return count


def image_path(row: Row) -> Path | None:
    """The local file a row's relative image_url names (lexically normalised); None for URLs."""
    url = row.value.get("image_url")
    scheme = _SCHEME.match(url) if isinstance(url, str) else None
    if not isinstance(url, str) or not url or (scheme and len(scheme["scheme"]) > 1):
        return None
    return Path(os.path.normpath(row.file.parent / url))


def _image_path(row: Row, images: Path) -> Path:
    path = image_path(row)
    if path is None or not path.is_relative_to(images) or not path.is_file():
        raise DataError(
            f"image_url {row.value.get('image_url')!r} is not an image file inside {images}",
            path=row.file,
            line=row.line,
        )
    return path


def _problem(url: str, base: Path, folder: Path) -> str | None:
    """Why an Azure job could not read `url` from the uploaded `folder`; None when it can."""
    scheme = _SCHEME.match(url)
    if scheme and len(scheme["scheme"]) > 1:  # one letter is a Windows drive, not a scheme
        if LONG_AZUREML_URL.match(url):
            return None
        if scheme["scheme"].lower() == "azureml":
            return (
                "is a short azureml:// URL, which Azure's mltable reads as nothing; use the long "
                "form azureml://subscriptions/S/resourcegroups/G/workspaces/W/datastores/D/paths/P"
            )
        return (
            "is a URL deitkit's components do not fetch images from (use a long-form "
            "azureml://subscriptions/.../datastores/D/paths/P URL, as `deitkit azure data upload` "
            "writes, or a path inside the folder)"
        )
    if not Path(url).is_absolute() and _inside(base / url, folder):
        return None
    return "is not inside the MLTable folder, and Azure uploads only that folder; " + upload_fix(
        folder
    )


def _jsonl_rows(jsonl: Path, *, drop_invalid: bool) -> Iterator[Row]:
    for number, text in enumerate(read_text(jsonl).split("\n"), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            if drop_invalid:  # MLTable's read_json_lines(invalid_lines: drop) skips it too
                continue
            raise DataError(f"not valid JSON ({err.msg})", path=jsonl, line=number) from None
        if not isinstance(value, dict):
            raise DataError("expected a JSON object per line", path=jsonl, line=number)
        yield Row(jsonl, number, value)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.normpath(path.absolute())).is_relative_to(
        os.path.normpath(folder.absolute())
    )
