"""Online scoring: azmlinfsrv's entry script, request forms, limits and the guarded URL fetcher."""

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
