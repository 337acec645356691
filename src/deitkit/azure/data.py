"""An imported dataset in a workspace: the image folder as uri_folder, MLTables of its URLs.

As Azure's fridgeObjects samples do: the images are registered first as a `uri_folder` data
asset; its `azureml://` path (the service returns the long form, with a trailing slash)
prefixes each image's path inside the folder in new JSONL files, staged beside a copy of the
MLTable file; those folders are registered as `mltable` assets NAME-training and
NAME-validation. The user's own MLTable folders are never changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deitkit.azure import mltables
from deitkit.azure.staging import staging_dir, write_folder
from deitkit.data.importer import TRAIN_MLTABLE_DIR, VALIDATION_MLTABLE_DIR
from deitkit.data.mltable import MLTABLE_FILE
from deitkit.errors import ConfigError, DataError

# Each MLTable side of an imported dataset, by the folder `deitkit data import` writes.
SIDES = {"training": TRAIN_MLTABLE_DIR, "validation": VALIDATION_MLTABLE_DIR}
IMAGES = "images"
# Azure ML data asset names: letters, digits, '-', '_', '.', starting with a letter or digit.
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 255 - len("-validation")
SHORT_URI = re.compile(r"^azureml://datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$")
LONG_URI = "azureml://subscriptions/{}/resourcegroups/{}/workspaces/{}/datastores/{}/paths/{}"
IMPORT_FIX = "write one with `deitkit data import DATASET --out DATA` and upload DATA"


@dataclass(frozen=True)
class ImportedData:
    """A folder `deitkit data import` wrote: the image folder and the MLTable folder per side."""

    root: Path
    images: Path
    mltables: dict[str, Path]


@dataclass(frozen=True)
class DataUpload:
    """What `upload` registers: the image folder's entity, then one mltable entity per side.

    The mltable entities' paths are the staging folders `upload` writes once the image
    folder's azureml:// path is known.
    """

    name: str
    data: ImportedData
    images: Any
    mltables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadedData:
    """The registered assets as `azureml:NAME:VERSION` references, and the images' URL."""

    images: str
    images_url: str
    mltables: dict[str, str]
    staging: Path


def read_imported(path: str | Path) -> ImportedData:
    """The image folder and MLTable folders of a folder `deitkit data import` wrote.

    Raises:
        ConfigError: `path` is not such a folder (no MLTable folders, annotations that are
            not relative paths into one image folder inside it, or missing images); the
            message names what is wrong and how to make one.
    """
    root = Path(path).absolute()
    if not root.is_dir():
        raise ConfigError(f"{path}: no such folder; {IMPORT_FIX}")
    folders = {side: root / name for side, name in SIDES.items()}
    for folder in folders.values():
        if not (folder / MLTABLE_FILE).is_file():
            raise ConfigError(
                f"{path}: not a folder `deitkit data import` wrote (no {folder.name}/"
                f"{MLTABLE_FILE}); {IMPORT_FIX}"
            )
    tops = set()
    try:
        for folder in folders.values():
            for row in mltables.rows(folder):
                image = mltables.image_path(row)
                if image is None or not image.is_relative_to(root) or image == root:
                    raise ConfigError(
                        f"{row.file}:{row.line}: image_url {row.value.get('image_url')!r} is "
                        f"not a path into {path}; only data that `deitkit data import` wrote "
                        "uploads this way"
                    )
                if not image.is_file():
                    raise ConfigError(f"{row.file}:{row.line}: image {image} is missing")
                tops.add(image.relative_to(root).parts[0])
    except DataError as err:
        raise ConfigError(str(err)) from None
    if len(tops) != 1 or (root / next(iter(tops))).is_file():
        found = ", ".join(sorted(tops)) or "none"
        raise ConfigError(
            f"{path}: the annotations should point into one image folder, found: {found}; "
            f"{IMPORT_FIX}"
        )
    return ImportedData(root, root / tops.pop(), folders)


def check_name(name: str) -> str:
    """`name` when Azure ML accepts it as the stem of the three data asset names."""
    if not ASSET_NAME.match(name) or len(name) > MAX_NAME:
        raise ConfigError(
            f"--name {name!r} is not allowed: letters, digits, '-', '_' and '.', starting with a "
            f"letter or digit, at most {MAX_NAME} characters"
        )
    return name


def asset_names(name: str) -> dict[str, str]:
    """{images, training, validation: the data asset name}: NAME-images, NAME-training, ..."""
    return {part: f"{name}-{part}" for part in (IMAGES, *SIDES)}


def plan_upload(data: ImportedData, name: str, *, version: str | None = None) -> DataUpload:
    """The three data asset entities `upload` registers; no Azure call, nothing written."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    names = asset_names(check_name(name))
    staging = staging_dir("data", name)
    images = Data(
        name=names[IMAGES],
        version=version,
        type=AssetTypes.URI_FOLDER,
        path=str(data.images),
        description=f"The images of {data.root} (deitkit data import).",
    )
    tables = {
        side: Data(
            name=names[side],
            version=version,
            type=AssetTypes.MLTABLE,
            path=str(staging / SIDES[side]),
            description=(
                f"The {side} annotations of {data.root}; each image_url is the path of "
                f"{names[IMAGES]} followed by the image's path inside that folder."
            ),
        )
        for side in SIDES
    }
    return DataUpload(name, data, images, tables)


def upload(client: Any, plan: DataUpload) -> UploadedData:
    """Register the images, stage the MLTables with their URLs, register the MLTables."""
    from deitkit.azure.submit import azure_call

    with azure_call(f"upload {plan.data.images} as data asset {plan.images.name}"):
        images = client.data.create_or_update(plan.images)
    url = long_form(str(images.path), client)
    reference = f"azureml:{images.name}:{images.version}"
    folders = stage(plan.data, url, Path(plan.mltables["training"].path).parent)
    registered = {}
    for side, entity in plan.mltables.items():
        entity.path = str(folders[side])
        entity.tags = {**(entity.tags or {}), "images": reference}
        with azure_call(f"register data asset {entity.name}"):
            table = client.data.create_or_update(entity)
        registered[side] = f"azureml:{table.name}:{table.version}"
    return UploadedData(reference, url, registered, folders["training"].parent)


def stage(data: ImportedData, images_url: str, dest: Path) -> dict[str, Path]:
    """`dest/<side>-mltable-folder/`: each MLTable with image_url under `images_url`.

    `dest` is replaced as a whole, so it never mixes two uploads.

    Raises:
        ConfigError: `images_url` is not an azureml:// or https:// folder URL.
    """
    if SHORT_URI.match(images_url):
        raise ConfigError(
            f"--images-url {images_url!r}: the short azureml://datastores/... form becomes None "
            "in mltable's stream_info conversion; pass the long form "
            "azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/datastores/..."
        )
    if not re.match(r"^(azureml|https)://", images_url):
        raise ConfigError(
            f"--images-url {images_url!r}: expected the azureml:// path of the images' "
            "uri_folder asset (`az ml data show --name NAME-images --version V --query path`)"
        )

    def write(folder: Path) -> None:
        for side, source in data.mltables.items():
            target = folder / SIDES[side]
            mltables.rewrite(source, target, images=data.images, images_url=images_url)

    write_folder(dest, write, replace=True)
    return {side: dest / SIDES[side] for side in SIDES}


def long_form(path: str, client: Any) -> str:
    """An azureml:// datastore path in the long form, ending in '/'.

    `mltable`'s stream_info conversion reads only the long form (a short
    `azureml://datastores/...` URL becomes None), so a short path is expanded with the
    client's workspace.
    """
    short = SHORT_URI.match(path)
    if short:
        path = LONG_URI.format(
            client.subscription_id,
            client.resource_group_name,
            client.workspace_name,
            short["datastore"],
            short["path"],
        )
    if not path.startswith("azureml://"):
        raise ConfigError(
            f"Azure returned {path!r} as the images' path, not an azureml:// datastore path"
        )
    return path if path.endswith("/") else path + "/"
