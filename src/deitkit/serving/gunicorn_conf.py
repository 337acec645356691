"""gunicorn's config file for azmlinfsrv (GUNICORN_CMD_ARGS): gthread workers, a read timeout."""

# gunicorn loads this module in its master, before any worker, and applies each name below
# that matches one of its settings (nothing else here may match one). It imports nothing
# heavy: `deitkit.serving` exports lazily, so torch stays out of the master.

from __future__ import annotations

import functools

from deitkit.serving.limits import serving_limits_from_env
from deitkit.serving.server_settings import (
    READ_TIMEOUT_ENV,
    THREADS_ENV,
    QuietTimeouts,
    server_settings_from_env,
    set_socket_timeout,
)

_settings = server_settings_from_env()

# A stuck connection holds one of the threads, not the worker; the scorer still scores one
# request at a time per worker (deitkit.serving.score).
worker_class = "gthread"
threads = _settings.threads


def post_worker_init(worker) -> None:
    """gunicorn hook, in each worker before it accepts: time out its listening sockets.

    Accepted connections inherit the timeout (Linux copies socket options at accept). Set in
    every worker (the sockets are shared, the value the same), so it holds after a reload too.
    """
    for listener in worker.sockets:
        set_socket_timeout(listener.sock, _settings.read_timeout)
    worker.log.error_log.addFilter(QuietTimeouts(_settings.read_timeout))
    worker.log.info(
        "deitkit: %d threads, %g s read timeout (%s, %s)",
        _settings.threads,
        _settings.read_timeout,
        THREADS_ENV,
        READ_TIMEOUT_ENV,
    )


@functools.cache
def _max_body_bytes() -> int:
    return serving_limits_from_env().max_body_bytes


def pre_request(worker, req) -> None:
    """gunicorn hook, before each request: close, and say so, a connection left mid-body.

    A body over DEITKIT_MAX_BODY_BYTES is refused (413) from its Content-Length alone, unread.
    gunicorn would then drain at most 64 KiB of it and drop the connection unannounced, and a
    client that reuses the connection gets "closed without response" on its next request.
    Marked here, the 413 goes out with `Connection: close`, and clients open a new one.
    """
    worker.log.debug("%s %s", req.method, req.path)  # what gunicorn's own hook does
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "")
    if length.strip().isdigit() and int(length) > _max_body_bytes():
        req.must_close = True
