"""Images behind `azureml://` datastore URLs, fetched with mltable into a local folder.

Azure mounts an `mltable` job input's folder and nothing else: the images its JSONL names by
`azureml://.../datastores/<ds>/paths/<p>` stay in the datastore. Azure's own image components
read them through the data runtime (azureml-dataprep), which authenticates as the job (or as
`az login` on a workstation); so does this module, through mltable's public `from_paths`.
The files land as `<folder>/<ds>/<p>`, the layout `$DEITKIT_AZUREML_DATASTORE_ROOT` uses, so
one resolver serves a fetched copy and `deitkit azure run-local`'s stand-in alike.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from deitkit.cache import cache_dir
from deitkit.data.references import (
    DATASTORE_ROOT_ENV,
    datastore_path,
    is_azureml_uri,
    resolves_under_root,
)
from deitkit.data.text import read_text
from deitkit.errors import DataError
from deitkit.progress import progress_bar

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def datastore_for(jsonl_files: Iterable[Path], root: Path) -> Path | None:
    """The folder the `azureml://` image URLs of `jsonl_files` resolve in, or None.

    `$DEITKIT_AZUREML_DATASTORE_ROOT` when set (the local stand-in). Otherwise None while every
    such URL has a local copy under `root` (a dataset downloaded whole); else the URLs are
    fetched into deitkit's cache (`datastore/`), which is returned.

    Raises:
        DataError: a URL could not be fetched; the message says from where and how to fix it.
    """
    if env := os.environ.get(DATASTORE_ROOT_ENV):
        return Path(env)
    urls = sorted({url for path in jsonl_files for url in _azureml_urls(path)})
    if all(resolves_under_root(url, root) for url in urls):
        return None
    target = cache_dir("datastore")
    fetch(urls, lambda url: datastore_path(url, target))
    return target


def fetch(urls: list[str], destination: Callable[[str], Path | None]) -> None:
    """Copy each URL (anything mltable's `from_paths` reads) to `destination(url)`.

    Each file is written beside its destination and renamed into place, so a half-fetched
    image is never read. Files already there are fetched again: the datastore is the truth.

    Raises:
        DataError: mltable is missing, or a URL could not be read (named in the message).
    """
    if not urls:
        return
    try:
        import mltable
    except ImportError:
        raise DataError(
            f"{urls[0]!r}: reading azureml:// images needs the mltable package "
            "(pip install 'deitkit[training]'); or point $DEITKIT_AZUREML_DATASTORE_ROOT "
            "at a local copy of the datastore"
        ) from None
    log.info("Fetching %d image(s) from the datastore", len(urls))
    try:
        frame = mltable.from_paths([{"file": url} for url in urls]).to_pandas_dataframe()
    except Exception as err:  # the data runtime's errors have no common base class
        raise _unreadable(urls[0], err) from None
    streams = list(frame["Path"])
    for index, url in enumerate(
        progress_bar(urls, desc="fetch images", unit="img", disable=len(urls) < 50)
    ):
        stream = _find(streams, index, url)
        dest = destination(url)
        if stream is None or dest is None:
            raise _unreadable(url, "no such file")
        _write(stream, dest, url)


def _azureml_urls(jsonl: Path) -> list[str]:
    urls = []
    for line in read_text(jsonl).split("\n"):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # read_jsonl reports it with its line number
        url = row.get("image_url") if isinstance(row, dict) else None
        if isinstance(url, str) and is_azureml_uri(url):
            urls.append(url)
    return urls


def _find(streams: list, index: int, url: str) -> object | None:
    # mltable keeps the order of `from_paths` but leaves out files it cannot find, and names
    # each stream by its storage URL: match by the path inside the datastore, which both end
    # with, trying the same position first.
    want = "/" + unquote(urlparse(url).path).split("/paths/", 1)[-1].strip("/")
    candidates = streams[index : index + 1] + streams
    for stream in candidates:
        name = unquote(str(getattr(stream, "resource_identifier", ""))).rstrip("/")
        if name.endswith(want) or "/" + name == want:
            return stream
    return None


def _write(stream: object, dest: Path, url: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(handle, "wb") as out, stream.open() as source:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
        os.replace(temporary, dest)
    except Exception as err:  # OSError, or the data runtime's StreamError(NotFound), ...
        raise _unreadable(url, err) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _unreadable(url: str, reason: object) -> DataError:
    reason = (str(reason).strip().splitlines() or ["unknown error"])[
        0
    ]  # credential chains run long
    return DataError(
        f"cannot fetch {url!r} from its datastore ({reason}). On Azure ML the job's identity "
        "reads it; elsewhere run `az login` with access to the workspace, or give a local "
        f"copy of the datastore with ${DATASTORE_ROOT_ENV} (deitkit azure run-local --datastore)"
    )
