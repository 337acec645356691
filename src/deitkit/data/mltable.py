"""MLTable folders as Azure ML's image jobs use them: `paths` of JSONL files + `read_json_lines`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from deitkit.data.files import MISSING, not_a_file
from deitkit.data.jsonl import InvalidLines
from deitkit.errors import DataError

MLTABLE_FILE = "MLTable"

_SUPPORTED = "read_json_lines, convert_column_types"
# Options of read_json_lines that change nothing about which rows are read.
_READ_JSON_LINES_OPTIONS = {
    "encoding",
    "invalid_lines",
    "include_path_column",
    "path_column",
    "partition_size",
}


@dataclass(frozen=True)
class MLTableSpec:
    """What an MLTable file asks for: the JSONL files to read and what to do with bad lines."""

    file: Path
    jsonl_files: tuple[Path, ...]
    invalid_lines: InvalidLines


def read_mltable_spec(folder: Path) -> MLTableSpec:
    """Parse `folder/MLTable`; `paths: [{file: ...}]` resolve against `folder`.

    Only the JSONL shape is supported: `read_json_lines` (encoding utf8, invalid_lines
    error|drop) optionally followed by `convert_column_types` (Azure's samples turn
    `image_url` into `stream_info`, which for local files is the path itself).

    Raises:
        DataError: naming the MLTable file when it is not YAML, lacks `paths` or
            `read_json_lines`, names a missing file, or uses another transformation.
    """
    file = folder / MLTABLE_FILE
    if (why := not_a_file(file)) not in (None, MISSING):
        raise DataError(why, path=file)
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise DataError(f"not valid YAML ({problem})", path=file, line=line) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the MLTable file: {err}", path=file) from None
    if not isinstance(spec, dict):
        raise DataError(
            f"expected a YAML mapping with 'paths' and 'transformations', found "
            f"{type(spec).__name__}",
            path=file,
        )
    jsonl_files = tuple(_jsonl_files(spec.get("paths"), folder, file))
    invalid_lines = _invalid_lines(spec.get("transformations"), file)
    return MLTableSpec(file, jsonl_files, invalid_lines)


def _jsonl_files(paths: object, folder: Path, file: Path) -> list[Path]:
    if not isinstance(paths, list) or not paths:
        raise DataError("'paths' must be a non-empty list like [{file: ./train.jsonl}]", path=file)
    found = []
    for entry in paths:
        if (
            not isinstance(entry, dict)
            or set(entry) != {"file"}
            or not isinstance(entry["file"], str)
        ):
            raise DataError(
                f"unsupported 'paths' entry {entry!r}: only {{file: <relative path>}} is "
                "supported (no folder or pattern)",
                path=file,
            )
        name = entry["file"]
        if "://" in name:
            raise DataError(f"paths file {name!r}: only local paths are supported", path=file)
        jsonl = Path(os.path.normpath(folder / name))
        if (why := not_a_file(jsonl)) is not None:
            raise DataError(f"paths file {name!r} {why} (looked for {jsonl})", path=file)
        found.append(jsonl)
    return found


def _invalid_lines(transformations: object, file: Path) -> InvalidLines:
    if not isinstance(transformations, list) or not transformations:
        raise DataError(
            "'transformations' must be a list starting with read_json_lines "
            f"(supported: {_SUPPORTED})",
            path=file,
        )
    name, options = _step(transformations[0], file)
    if name != "read_json_lines":
        raise _unsupported(name, 1, file)
    invalid_lines = _read_json_lines(options or {}, file)
    for position, step in enumerate(transformations[1:], start=2):
        name, _ = _step(step, file)
        # Conversions change column types (image_url -> stream_info), not which rows are read.
        if name != "convert_column_types":
            raise _unsupported(name, position, file)
    return invalid_lines


def _unsupported(name: str, position: int, file: Path) -> DataError:
    return DataError(
        f"unsupported transformation {name!r} at position {position}: deitkit reads MLTables "
        f"of JSONL files (supported: {_SUPPORTED}, read_json_lines first)",
        path=file,
    )


def _step(step: object, file: Path) -> tuple[str, object]:
    if isinstance(step, str):
        return step, None
    if isinstance(step, dict) and len(step) == 1:
        return next(iter(step.items()))
    raise DataError(f"unsupported transformation entry {step!r}", path=file)


def _read_json_lines(options: object, file: Path) -> InvalidLines:
    if not isinstance(options, dict):
        raise DataError(f"read_json_lines options must be a mapping, found {options!r}", path=file)
    unknown = sorted(set(options) - _READ_JSON_LINES_OPTIONS)
    if unknown:
        raise DataError(f"unsupported read_json_lines option(s): {', '.join(unknown)}", path=file)
    encoding = str(options.get("encoding", "utf8")).lower().replace("-", "")
    if encoding != "utf8":
        raise DataError(f"read_json_lines encoding {encoding!r}: only utf8 is supported", path=file)
    invalid_lines = options.get("invalid_lines", "error")
    if invalid_lines not in ("error", "drop"):
        raise DataError(
            f"read_json_lines invalid_lines {invalid_lines!r}: expected 'error' or 'drop'",
            path=file,
        )
    return invalid_lines
