"""Inputs and outputs laid out as Azure ML mounts them for a job.

Each data input is a read-only copy of what that input uploads, at
`cap/data-capability/wd/INPUT_<name>` (Azure's `ro_mount`): the folder of an `mltable` or
`uri_folder` input and nothing beside it, so a JSONL path that climbs out of an MLTable folder
finds nothing, as on Azure; a `uri_file` keeps its name inside that folder. Each output is a
fresh empty folder at `cap/data-capability/wd/<name>` (`rw_mount`). A path may also be an
`azureml://datastores/<ds>/paths/<p>` URL, read from the local datastore folder.

Running as root, read-only permissions stop nothing, so each copy is fingerprinted before the
job and checked after it: a job that writes into an input fails here as it would on Azure.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from deitkit.data.mltable import MLTABLE_FILE
from deitkit.data.references import datastore_path
from deitkit.errors import ConfigError

MOUNT_DIR = Path("cap/data-capability/wd")
INPUT_PREFIX = "INPUT_"
MLMODEL_FILE = "MLmodel"

Fingerprint = dict[str, tuple[int, int]]


def resolve_path(
    value: object, input_type: str, *, datastore: Path | None, base: Path, origin: str
) -> Path:
    """The local file or folder a data input's value names, checked for its type.

    Args:
        value: A local path (relative to `base`) or an `azureml://datastores/...` URL.
        input_type: `mltable`, `uri_folder`, `uri_file`, `mlflow_model`, ...
        datastore: The local folder standing in for the workspace's datastores.
        base: What relative paths are relative to.
        origin: Where the value came from, for messages.

    Raises:
        ConfigError: another URI, a missing path, or one that is not what the type reads.
    """
    text = str(value)
    if text.startswith("azureml://"):
        if datastore is None:
            raise ConfigError(
                f"{origin}: {text} needs --datastore DIR, the local folder standing in for the "
                "workspace's datastores (DIR/<datastore>/<path>)"
            )
        path = datastore_path(text, datastore)
        if path is None:
            raise ConfigError(
                f"{origin}: {text}: only azureml://datastores/<ds>/paths/<path> URLs resolve "
                "locally (not data assets, jobs or registries)"
            )
    elif "://" in text or text.startswith("azureml:"):
        raise ConfigError(
            f"{origin}: {text}: the local runner reads local paths and "
            "azureml://datastores/<ds>/paths/<path> URLs only"
        )
    else:
        path = base / Path(text).expanduser()
    path = Path(os.path.normpath(path.absolute()))
    _check_kind(path, input_type, origin)
    return path


def _check_kind(path: Path, input_type: str, origin: str) -> None:
    if not path.exists():
        raise ConfigError(f"{origin}: {path}: no such file or folder")
    if input_type == "uri_file" and not path.is_file():
        raise ConfigError(f"{origin}: {path}: a uri_file input takes a file, not a folder")
    if input_type in ("uri_folder", "mltable", "mlflow_model") and not path.is_dir():
        raise ConfigError(f"{origin}: {path}: a {input_type} input takes a folder, not a file")
    if input_type == "mltable" and not (path / MLTABLE_FILE).is_file():
        raise ConfigError(
            f"{origin}: {path}: not an MLTable folder (no {MLTABLE_FILE} file in it); Azure ML "
            "fails such an input with 'Not able to find MLTable file'"
        )
    if input_type == "mlflow_model" and not (path / MLMODEL_FILE).is_file():
        raise ConfigError(f"{origin}: {path}: not an MLflow model folder (no {MLMODEL_FILE} file)")


def mount_input(source: Path, name: str, input_type: str, job_dir: Path, *, origin: str) -> Path:
    """Copy `source` read-only to the job's `INPUT_<name>`; the path the command gets.

    Raises:
        ConfigError: `source` is not what `input_type` reads (an upstream step's output, say).
    """
    _check_kind(source, input_type, origin)
    mount = job_dir / MOUNT_DIR / f"{INPUT_PREFIX}{name}"
    mount.mkdir(parents=True)
    if source.is_dir():
        target = mount
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target = mount / source.name
        shutil.copy2(source, target)
    set_writable(mount, False)
    return target


def make_output(name: str, job_dir: Path) -> Path:
    """A fresh empty folder for the output `name`."""
    folder = job_dir / MOUNT_DIR / name
    folder.mkdir(parents=True)
    return folder


def fingerprint(folder: Path) -> Fingerprint:
    """Every file under `folder` with its size and modification time."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        found[path.relative_to(folder).as_posix()] = (info.st_size, info.st_mtime_ns)
    return found


def changed(before: Fingerprint, after: Fingerprint) -> list[str]:
    """The paths added, removed or modified between two fingerprints."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def set_writable(folder: Path, writable: bool) -> None:
    """Give (or take away) write permission on `folder` and everything in it."""
    write = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod((mode | stat.S_IWUSR) if writable else (mode & ~write))
