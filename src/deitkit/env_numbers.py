"""Numeric settings read from environment variables, refused in one line naming the variable."""

from __future__ import annotations

import math
import os
from typing import Literal

from deitkit.errors import ConfigError

# What each kind accepts, as the error message says it.
_EXPECTED = {
    "integer": "an integer >= 1",
    "number": "a number >= 1",
    "seconds": "a number of seconds > 0",
}
Kind = Literal["integer", "number", "seconds"]


def env_number(name: str, kind: Kind = "integer") -> int | float | None:
    """The value of environment variable `name`, or None when it is unset or blank.

    Args:
        name: The variable.
        kind: `integer` (>= 1, e.g. a byte or image count), `number` (a finite float >= 1, e.g.
            a ratio) or `seconds` (a finite float > 0).

    Raises:
        ConfigError: the value is not of that kind, naming the variable, its value and what is
            expected.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    value: int | float | None
    try:
        value = int(raw) if kind == "integer" else float(raw)
    except ValueError:
        value = None
    low_ok = value is not None and (value > 0 if kind == "seconds" else value >= 1)
    if value is None or not math.isfinite(value) or not low_ok:
        raise ConfigError(f"{name}={raw!r} is invalid: expected {_EXPECTED[kind]}")
    return value


def env_numbers(names: dict[str, str], kinds: dict[str, Kind] | None = None) -> dict[str, object]:
    """`{field: value}` for each `{field: variable}` of `names` that is set (see `env_number`).

    `kinds` gives a field's kind where it is not `integer`.
    """
    kinds = kinds or {}
    values = {field: env_number(name, kinds.get(field, "integer")) for field, name in names.items()}
    return {field: value for field, value in values.items() if value is not None}
