"""What the user asks for: `DEITKIT_INFERENCE_ENGINE` and `_DTYPE`, or the loader's arguments."""

from __future__ import annotations

import os
from dataclasses import dataclass

from deitkit.inference.engines.names import BACKENDS, DTYPES, backend_of, dtype_of
from deitkit.precision import AUTO, parse_precision

ENGINE_ENV = "DEITKIT_INFERENCE_ENGINE"
DTYPE_ENV = "DEITKIT_INFERENCE_DTYPE"


@dataclass(frozen=True)
class Request:
    """The backend and precision asked for (`auto` leaves each to the start-up choice).

    Attributes:
        backend: `auto`, `torch` or `onnx`.
        dtype: `auto`, `fp32`, `bf16` or `int8`.
        source: Names where the request came from, for messages ("DEITKIT_INFERENCE_DTYPE=int8").
    """

    backend: str = AUTO
    dtype: str = AUTO
    source: str = ""

    @property
    def explicit(self) -> bool:
        return self.backend != AUTO or self.dtype != AUTO

    def matches(self, name: str) -> bool:
        """True when engine `name` is one this request allows."""
        return self.backend in (AUTO, backend_of(name)) and self.dtype in (AUTO, dtype_of(name))


def requested(engine: str | None = None, dtype: str | None = None) -> Request:
    """The request: each argument, else its environment variable, else `auto`.

    `float32` and `bfloat16` are accepted for `fp32` and `bf16`.

    Raises:
        ConfigError: a value is not allowed, naming the argument or variable, the value and
            the allowed ones.
    """
    backend, backend_source = _value(engine, "engine", ENGINE_ENV)
    precision, dtype_source = _value(dtype, "dtype", DTYPE_ENV)
    backend = parse_precision(backend, allowed=(AUTO, *BACKENDS), where=backend_source)
    precision = parse_precision(precision, allowed=(AUTO, *DTYPES), where=dtype_source)
    sources = [
        f"{where}={value}"
        for where, value in ((backend_source, backend), (dtype_source, precision))
        if value != AUTO
    ]
    return Request(backend, precision, ", ".join(sources))


def _value(argument: str | None, name: str, variable: str) -> tuple[str, str]:
    if argument:
        return argument, name
    from_env = os.environ.get(variable, "").strip()
    return (from_env, variable) if from_env else (AUTO, variable)
