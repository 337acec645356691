"""JSONL annotations in Azure ML's image format: `{"image_url": ..., "label": ...}` per line."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deitkit.data.dataset import Example
from deitkit.data.problems import ProblemLog
from deitkit.data.references import resolve_reference
from deitkit.data.text import read_text
from deitkit.errors import DataError

InvalidLines = Literal["error", "drop"]


@dataclass(frozen=True)
class JsonlRows:
    """The examples read from one JSONL file; `multilabel` when any label was a list."""

    examples: list[Example]
    multilabel: bool


def read_jsonl(
    path: Path,
    *,
    root: Path,
    log: ProblemLog,
    invalid_lines: InvalidLines = "error",
    datastore: Path | None = None,
) -> JsonlRows:
    """Read one JSONL annotation file; relative image paths resolve against its folder.

    `"label": "can"` is one label; `"label": ["can", "carton"]` makes the file multilabel
    (an empty list is an image with none of the labels). Other keys (`image_details`, …) are
    ignored. Lines that are not JSON are errors, or warnings and skipped when
    `invalid_lines="drop"` (MLTable's `read_json_lines` option). `azureml://` image URLs
    resolve in `datastore` when given (`deitkit.data.datastore.datastore_for`).

    Raises:
        DataError: when the file cannot be read or is not UTF-8 (entry-level problems go to `log`).
    """
    examples = []
    multilabel = False
    name = os.path.relpath(path, root)  # origins read `train/annotations.jsonl:12`
    for number, text in enumerate(read_text(path).split("\n"), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            what = f"not valid JSON ({err.msg} at column {err.colno})"
            if invalid_lines == "drop":
                log.warning(f"{what}; line dropped (invalid_lines: drop)", path=path, line=number)
            else:
                log.error(what, path=path, line=number)
            continue
        try:
            labels, is_list = _parse_row(row)
            image = resolve_reference(
                row["image_url"], base=path.parent, root=root, datastore=datastore
            )
        except DataError as err:
            log.error(err.reason, path=path, line=number)
            continue
        multilabel = multilabel or is_list
        examples.append(Example(image, labels, f"{name}:{number}"))
    return JsonlRows(examples, multilabel)


def _parse_row(row: object) -> tuple[tuple[str, ...], bool]:
    if not isinstance(row, dict):
        raise DataError(
            f'expected a JSON object like {{"image_url": ..., "label": ...}}, '
            f"found {type(row).__name__}"
        )
    missing = [key for key in ("image_url", "label") if key not in row]
    if missing:
        raise DataError(f"missing key {missing[0]!r} (found keys: {', '.join(map(repr, row))})")
    label = row["label"]
    if isinstance(label, str):
        if not label.strip():
            raise DataError("label is an empty string")
        return (label,), False
    if isinstance(label, list) and all(isinstance(x, str) and x.strip() for x in label):
        return tuple(label), True
    raise DataError(
        f"label must be a non-empty string or a list of non-empty strings, found {label!r}"
    )
