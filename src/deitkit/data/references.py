"""Which files count as images, and how an image reference resolves to a file inside the root."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from deitkit.data.files import not_a_file
from deitkit.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# Left behind by macOS Finder and Windows Explorer; never data.
_IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})

# azureml://[subscriptions/<s>/resourcegroups/<rg>/workspaces/<ws>/]datastores/<ds>/paths/<p>
_AZUREML_URI = re.compile(r"^azureml://(?:.*/)?datastores/(?P<ds>[^/]+)/paths/(?P<path>.+)$", re.I)
# A local folder standing in for the workspace's datastores: `<it>/<ds>/<p>` is the file behind
# `azureml://.../datastores/<ds>/paths/<p>`. `deitkit azure run-local --datastore` sets it for
# the jobs it runs, so an MLTable whose JSONL holds azureml:// URLs reads the same data locally.
DATASTORE_ROOT_ENV = "DEITKIT_AZUREML_DATASTORE_ROOT"


def is_ignored(path: Path) -> bool:
    """True for hidden files and folders (`.DS_Store`, `.git`) and OS litter like `__MACOSX`."""
    return path.name.startswith(".") or path.name in _IGNORED_NAMES


def is_image_name(path: Path) -> bool:
    """True when the file name has an image extension (case-insensitive) and is not ignored."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not is_ignored(path)


def is_inside(path: Path, root: Path) -> bool:
    """True when `path` (symlinks followed) lies inside `root` (symlinks followed)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def datastore_path(uri: str, datastore_root: str | Path) -> Path | None:
    """The local stand-in `<datastore_root>/<ds>/<p>` of an `azureml://` datastore URI.

    Returns:
        The lexically normalised path (it may not exist), or None when `uri` is not an
        `azureml://[...workspaces/<ws>/]datastores/<ds>/paths/<p>` URI.

    Raises:
        DataError: the path climbs with `..` (it would leave the datastore).
    """
    match = _AZUREML_URI.match(uri)
    if not match:
        return None
    parts = [p for p in unquote(match["path"]).split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{uri!r} contains '..'; datastore paths must not climb")
    return Path(os.path.normpath(Path(datastore_root).absolute())).joinpath(match["ds"], *parts)


def is_azureml_uri(ref: str) -> bool:
    """True for an `azureml://[...workspaces/<ws>/]datastores/<ds>/paths/<p>` URI."""
    return _AZUREML_URI.match(ref) is not None


def resolves_under_root(uri: str, root: Path) -> bool:
    """True when a trailing part of the datastore URI's path is a file under `root`."""
    try:
        _resolve_azureml(uri, unquote(_AZUREML_URI.match(uri)["path"]), root)
    except (DataError, TypeError):
        return False
    return True


def resolve_reference(
    ref: object, *, base: Path, root: Path, datastore: Path | None = None
) -> Path:
    """Turn an image reference from an annotation file into an existing file inside `root`.

    Args:
        ref: the value as written: a relative or absolute local path, a `file://` URI, or an
            `azureml://.../datastores/<ds>/paths/<p>` URI. With `datastore`, such a URI is the
            file `<datastore>/<ds>/<p>` (which may lie outside `root`, as the datastore does
            on Azure); without it, the local file at the longest trailing part of `<p>` that
            exists under `root`.
        base: the folder relative paths resolve from (the annotation file's folder).
        root: the dataset root; nothing outside it (or the datastore folder) may be read.
        datastore: a local folder laid out as `<ds>/<p>` (see `deitkit.data.datastore`).

    Returns:
        The absolute, lexically normalised path (symlinks inside the root are kept as named).

    Raises:
        DataError: without a path; the caller adds the file and line it read `ref` from.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise DataError(f"image reference must be a non-empty string, found {ref!r}")
    match = _AZUREML_URI.match(ref)
    if match and datastore is not None:
        return _resolve_in_datastore(ref, datastore)
    if match:
        return _resolve_azureml(ref, unquote(match["path"]), root)
    scheme = urlparse(ref).scheme.lower()
    if scheme == "file":
        local = Path(url2pathname(urlparse(ref).path))
    elif len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise DataError(
            f"cannot read {ref!r} locally: only local paths, file:// and azureml:// datastore "
            "URIs are supported; download the images and refer to them by local path"
        )
    else:
        local = Path(ref)
    candidate = Path(os.path.normpath(local if local.is_absolute() else base / local))
    return _check_file(ref, candidate, root)


def _resolve_in_datastore(ref: str, datastore: Path) -> Path:
    candidate = datastore_path(ref, datastore)
    assert candidate is not None, ref  # callers matched _AZUREML_URI
    if not candidate.exists():
        raise DataError(
            f"{ref!r}: no such file in the local datastore {datastore} (looked for {candidate})"
        )
    return _check_file(ref, candidate, datastore)


def _resolve_azureml(ref: str, path_in_datastore: str, root: Path) -> Path:
    parts = [p for p in path_in_datastore.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{ref!r} contains '..'; datastore paths must not climb")
    # Azure's samples upload `fridgeObjects/` under a generated prefix (`LocalUpload/<hash>/`);
    # the local copy keeps only the trailing part, so try the longest suffix first.
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if candidate.is_file():
            return _check_file(ref, candidate, root)
    raise DataError(
        f"{ref!r}: no trailing part of datastore path {path_in_datastore!r} exists under the "
        f"dataset root {root}; download the data asset next to the annotations or use local paths"
    )


def _check_file(ref: str, candidate: Path, root: Path) -> Path:
    # Lexical check before touching the file system: never probe paths outside the root.
    if not candidate.is_relative_to(os.path.normpath(root.absolute())):
        raise DataError(f"image path {ref!r} escapes the dataset root {root}")
    if not candidate.exists():
        raise DataError(f"image file {ref!r} does not exist (looked for {candidate})")
    if not is_inside(candidate, root):
        raise DataError(f"image path {ref!r} is a symlink pointing outside the dataset root {root}")
    if (why := not_a_file(candidate)) is not None:
        raise DataError(f"image path {ref!r} {why} ({candidate})")
    return candidate
