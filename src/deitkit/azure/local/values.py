"""Input values checked against their declarations: types, enums, required inputs, defaults.

A value arrives as a string (`--set name=value`), as a YAML literal (a pipeline node's
`inputs:`), or as a Python value (the library). Strings are parsed with azure-ai-ml's own
`Input._parse` (booleans in any case, integers through `float` as the service sends them); a
value that does not fit is refused with one line that names the input and what it takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from deitkit.errors import ConfigError

PRIMITIVE_TYPES = ("string", "integer", "number", "boolean")
# The asset types an input or output can have; each is mounted as a file or a folder.
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")


def is_required(decl: Any) -> bool:
    """True when the declaration is not optional (azure-ai-ml leaves `optional` None if unset)."""
    return not decl.optional


def describe(decl: Any) -> str:
    """What an input takes, for messages: `an integer`, `one of a, b`, `an mltable folder`."""
    if decl.type == "string" and decl.enum:
        return "one of " + ", ".join(map(str, decl.enum))
    kinds = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "uri_file": "a file",
        "uri_folder": "a folder",
        "mltable": "an MLTable folder",
        "mlflow_model": "an MLflow model folder",
    }
    return kinds.get(decl.type, f"a {decl.type}")


def check_value(name: str, decl: Any, value: Any, *, origin: str) -> Any:
    """`value` for the input `name` parsed and checked against `decl`.

    Args:
        name: The input's name.
        decl: Its `azure.ai.ml.Input` declaration.
        value: The value given (None: not given).
        origin: Where the value came from (`--set x`, `step finetune`), for messages.

    Returns:
        The value to render: a parsed primitive, or the data value unchanged (`mounts`
        checks paths).

    Raises:
        ConfigError: one line naming `origin`, the input, the value and what it takes.
    """
    if value is None or decl.type not in PRIMITIVE_TYPES:
        return value
    parsed = _parse(decl, value)
    fits = parsed is not None and _fits(decl.type, parsed)
    if fits and decl.type == "string" and decl.enum:
        fits = str(parsed) in map(str, decl.enum)
    if fits and decl.type in ("integer", "number"):
        fits = (decl.min is None or parsed >= decl.min) and (decl.max is None or parsed <= decl.max)
    if not fits:
        bounds = "".join(
            f", {label} {bound}"
            for label, bound in (("min", decl.min), ("max", decl.max))
            if bound is not None
        )
        raise ConfigError(
            f"{origin}: {value!r} does not fit input {name!r} ({decl.type}{bounds}); "
            f"expected {describe(decl)}"
        )
    return parsed


def with_defaults(declared: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared input: its given value, else its default, else None."""
    return {
        name: values.get(name) if values.get(name) is not None else decl.default
        for name, decl in declared.items()
    }


def check_names(
    declared: Mapping[str, Any], given: Mapping[str, Any], *, origin: str, where: str
) -> None:
    """ConfigError when `given` names an input that `declared` lacks, listing the inputs."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(
            f"{origin} {unknown[0]}: {where} has no input {unknown[0]!r}; its inputs: "
            f"{', '.join(sorted(declared))}"
        )


def _parse(decl: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if decl.type in ("integer", "number"):
        try:
            number = float(value)
        except ValueError:
            return None
        # Input._parse turns "1.5" into 1 for an integer; the service would not take it.
        if not math.isfinite(number) or (decl.type == "integer" and not number.is_integer()):
            return None
    try:
        return decl._parse(value)  # azure-ai-ml's own parsing of a command-line value
    except Exception:  # its ValidationException for booleans other than true/false
        return None


def _fits(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind in ("boolean", "string")
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and math.isfinite(value)
    if kind == "boolean":
        return False
    return isinstance(value, str | int | float)
