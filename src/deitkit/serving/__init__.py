"""Online scoring: azmlinfsrv's entry script, request forms, limits and the guarded URL fetcher."""

# The names below load on first use: gunicorn's master imports `deitkit.serving.gunicorn_conf`
# and must not pay for torch, which the scorer's modules import.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deitkit.serving.limits import ServingLimits, serving_limits_from_env
    from deitkit.serving.payload import (
        RequestError,
        ScoringRequest,
        Shape,
        format_response,
        parse_request,
    )
    from deitkit.serving.server import LocalServer, free_port, run_server
    from deitkit.serving.urls import UrlFetcher, blocked_reason, resolve_host

_EXPORTS = {
    "LocalServer": "deitkit.serving.server",
    "RequestError": "deitkit.serving.payload",
    "ScoringRequest": "deitkit.serving.payload",
    "ServingLimits": "deitkit.serving.limits",
    "Shape": "deitkit.serving.payload",
    "UrlFetcher": "deitkit.serving.urls",
    "blocked_reason": "deitkit.serving.urls",
    "format_response": "deitkit.serving.payload",
    "free_port": "deitkit.serving.server",
    "parse_request": "deitkit.serving.payload",
    "resolve_host": "deitkit.serving.urls",
    "run_server": "deitkit.serving.server",
    "serving_limits_from_env": "deitkit.serving.limits",
}

__all__ = [
    "LocalServer",
    "RequestError",
    "ScoringRequest",
    "ServingLimits",
    "Shape",
    "UrlFetcher",
    "blocked_reason",
    "format_response",
    "free_port",
    "parse_request",
    "resolve_host",
    "run_server",
    "serving_limits_from_env",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
