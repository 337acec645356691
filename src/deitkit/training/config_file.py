"""`deitkit finetune --config FILE`: a YAML or JSON mapping of FinetuneConfig fields, checked.

Keys are the field names (`learning_rate`), or the flag's spelling without its dashes
(`learning-rate`, `deepspeed`). The finetune_config.json a run writes is such a file.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from deitkit.errors import ConfigError
from deitkit.training.config import FinetuneConfig


def key_names() -> dict[str, str]:
    """Every accepted key → the FinetuneConfig field it sets."""
    names = {}
    for field in dataclasses.fields(FinetuneConfig):
        flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
        names[field.name] = names[flag.removeprefix("--")] = field.name
    return names


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields `path` sets, by field name; values as the file has them (the CLI converts).

    YAML is read with `yaml.safe_load`, which reads JSON too.

    Raises:
        ConfigError: the file cannot be read or parsed, is not a mapping, or has a key that
            is no field (naming the closest one), or sets one field twice.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: cannot be read: {err}") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"--config {path}: not YAML or JSON{at}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"--config {path}: expected a mapping of option names to values, "
            f"got {type(document).__name__}"
        )
    names = key_names()
    fields: dict[str, Any] = {}
    for key, value in document.items():
        field = names.get(str(key))
        if field is None:
            raise ConfigError(f"--config {path}: unknown key {key!r}{_suggestion(str(key))}")
        if field in fields:
            raise ConfigError(f"--config {path}: {key!r} sets {field}, which is set already")
        fields[field] = value
    return fields


def _suggestion(key: str) -> str:
    """`; did you mean 'learning_rate'?` for the closest field name, or nothing."""
    spelled = key.replace("-", "_")
    fields = [field.name for field in dataclasses.fields(FinetuneConfig)]
    close = difflib.get_close_matches(spelled, fields, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; the keys are the `deitkit finetune` options' names (see --help), with _ or -"
