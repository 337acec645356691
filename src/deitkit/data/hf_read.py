"""A `datasets` split read into examples: its image and label columns found, labels named.

Columns: the one `Image` feature column, else a column named image or img; the one
`ClassLabel` (multiclass) or list-of-`ClassLabel` (multilabel) column, else a column named
label or labels holding strings (or integers, named as written), or lists of them. Either may
be named outright (--image-column, --label-column). Label names come from the ClassLabel's
`names`; deitkit's label map sorts them like every layout's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deitkit.data.dataset import Example
from deitkit.data.files import not_a_file
from deitkit.data.hf_images import ImageStaging
from deitkit.data.hf_load import files_of, load_split, require_datasets
from deitkit.data.hf_source import HUB, HfOptions, HfSource
from deitkit.data.problems import ProblemLog
from deitkit.data.references import is_inside
from deitkit.errors import DataError

IMAGE_NAMES = ("image", "img")
LABEL_NAMES = ("label", "labels")
_BATCH = 256


def read_hf(
    source: HfSource, options: HfOptions, log: ProblemLog
) -> tuple[Path, list[Example], bool]:
    """The dataset root, the examples and whether the labels are lists (multilabel).

    The root is the input's folder (a file's parent); for a hub dataset the cache folder its
    images are written to. Entry-level problems (a label id outside the names, no label, an
    image path that is missing) go to `log` naming the split and row.

    Raises:
        DataError: `datasets` is missing, the input cannot be loaded, or it has no usable image
            or label column (naming the columns it has, and the file).
    """
    datasets = require_datasets(source)
    dataset, split = load_split(source, options.splits)
    where = _where(source)
    image_col = _image_column(datasets, dataset, options.image_column, where)
    label_col, to_labels, multilabel = _label_column(
        datasets, dataset, options.label_column, image_col, where
    )
    if isinstance(dataset.features[image_col], datasets.Image):
        # Bytes and path as stored: decoding is the image pipeline's work, with its limits.
        dataset = dataset.cast_column(image_col, datasets.Image(decode=False))
    staging = ImageStaging(dataset, split, image_col)
    local = source.layout != HUB
    root = (source.path if source.path.is_dir() else source.path.parent) if local else None
    root = Path(os.path.abspath(root)) if root is not None else staging.folder
    examples = []
    columns = dataset.select_columns([image_col, label_col])
    for start, batch in _batches(columns):
        cells = zip(batch[image_col], batch[label_col], strict=True)
        for row, (image, label) in enumerate(cells, start):
            origin = f"{split} row {row}"
            try:
                labels = to_labels(label)
                path = _image_file(image, row, staging, root, image_col)
            except DataError as err:
                log.error(f"{origin}: {err.reason}", path=where)
                continue
            examples.append(Example(path, labels, origin))
    return root, examples, multilabel


def _batches(dataset):
    start = 0
    for batch in dataset.iter(batch_size=_BATCH):
        yield start, batch
        start += len(next(iter(batch.values())))


def _where(source: HfSource) -> str:
    """What messages name: the one data file where there is one, else the input."""
    files = files_of(source)
    return str(files[0]) if len(files) == 1 else source.location


def _image_column(datasets, dataset, given: str | None, where: str) -> str:
    features = dataset.features
    if given is not None:
        _require_column(features, given, "--image-column", where)
        return given
    found = [name for name, f in features.items() if isinstance(f, datasets.Image)]
    named = [name for name in IMAGE_NAMES if name in features]
    chosen = _pick(found, named)
    if chosen is None:
        what = f"{len(found)} Image feature columns ({', '.join(found)})" if found else "no Image"
        if not found:
            what += f" feature column and no column named {' or '.join(IMAGE_NAMES)}"
        raise DataError(
            f"no image column: {what} (columns: {', '.join(features)}); name it with "
            "--image-column",
            path=where,
        )
    return chosen


def _label_column(
    datasets, dataset, given: str | None, image_col: str, where: str
) -> tuple[str, Callable[[Any], tuple[str, ...]], bool]:
    """The label column, the function that names a cell's labels, and whether it is multilabel."""
    features = dataset.features
    if given is not None:
        _require_column(features, given, "--label-column", where)
        chosen = given
    else:
        class_labels = [
            name
            for name, f in features.items()
            if name != image_col and isinstance(_inner(f) or f, datasets.ClassLabel)
        ]
        chosen = _pick(class_labels, [name for name in LABEL_NAMES if name in features])
        if chosen is None:
            what = (
                f"{len(class_labels)} ClassLabel columns ({', '.join(class_labels)})"
                if class_labels
                else f"no ClassLabel column and no column named {' or '.join(LABEL_NAMES)}"
            )
            raise DataError(
                f"no label column: {what} (columns: {', '.join(features)}); name it with "
                "--label-column",
                path=where,
            )
    feature = features[chosen]
    inner = _inner(feature)
    multilabel = inner is not None
    name = _namer(datasets, inner if multilabel else feature, chosen, where)
    if multilabel:
        return chosen, lambda cell: _many(cell, name, chosen), True
    return chosen, lambda cell: (name(cell),), False


def _namer(datasets, feature, column: str, where: str) -> Callable[[Any], str]:
    """The function giving one label's name from a cell of `feature`."""
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names

        def from_id(value):
            if value is None:
                raise DataError(f"no label in column {column!r}")
            if isinstance(value, int) and 0 <= value < len(names):
                return names[value]
            raise DataError(
                f"label id {value!r} in column {column!r} is not one of its {len(names)} "
                f"ClassLabel names (ids 0..{len(names) - 1})"
            )

        return from_id
    dtype = getattr(feature, "dtype", None)
    if dtype in ("string", "large_string") or (dtype or "").startswith(("int", "uint")):

        def from_value(value):
            if value is None or value == "":
                raise DataError(f"no label in column {column!r}")
            return str(value)

        return from_value
    raise DataError(
        f"column {column!r} holds {feature}, not class labels (ClassLabel, strings, integers, "
        "or lists of them); name another with --label-column",
        path=where,
    )


def _many(cell, name: Callable[[Any], str], column: str) -> tuple[str, ...]:
    if cell is None:
        raise DataError(f"no label list in column {column!r} (an empty list means no labels)")
    return tuple(name(value) for value in cell)


def _image_file(value, row: int, staging: ImageStaging, root: Path, column: str) -> Path:
    """The file of one image cell: its embedded bytes written to the cache, or its own file."""
    data, name = value, None
    if isinstance(value, dict):
        data, name = value.get("bytes"), value.get("path")
    elif isinstance(value, str):
        data, name = None, value
    if isinstance(data, bytes | bytearray):
        return staging.file_for(row, bytes(data), name)
    if not name:
        raise DataError(f"no image in column {column!r}")
    path = Path(name) if os.path.isabs(name) else root / name
    if not is_inside(path, root):
        raise DataError(f"image {name} lies outside the dataset folder {root}")
    if (why := not_a_file(path)) is not None:
        raise DataError(f"image {name} {why}")
    return path


def _inner(feature):
    """The element feature of a list feature (List, LargeList, Sequence), else None."""
    return getattr(feature, "feature", None) if type(feature).__name__.endswith("List") else None


def _pick(found: list[str], named: list[str]) -> str | None:
    """The one column found by feature; among several, the conventionally named one."""
    if len(found) == 1:
        return found[0]
    if found:
        preferred = [name for name in named if name in found]
        return preferred[0] if preferred else None
    return named[0] if named else None


def _require_column(features, name: str, flag: str, where: str) -> None:
    if name not in features:
        raise DataError(
            f"{flag} {name!r}: no such column (columns: {', '.join(features)})", path=where
        )
