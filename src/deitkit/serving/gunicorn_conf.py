"""gunicorn settings under azmlinfsrv: threaded workers and a socket timeout for slow clients.

azmlinfsrv runs one sync gunicorn worker with no read timeout: one client that connects and
stays silent (or stops inside its headers or body) holds that worker until the 300 s worker
timeout. gunicorn reads `GUNICORN_CMD_ARGS` itself, so `--config python:` + this module
(`GUNICORN_CMD_ARGS` below) changes that for `deitkit serve` and an Azure deployment alike:

- `gthread` workers with `DEITKIT_SERVER_THREADS` threads: a connection waits for its bytes
  in its own thread, so a stuck one holds a thread, not the worker. The scorer still scores
  one request at a time per worker (`deitkit.serving.score`), so a worker's model memory
  stays one request's worth.
- `DEITKIT_READ_TIMEOUT` seconds as the listening socket's SO_RCVTIMEO and SO_SNDTIMEO,
  which every accepted connection inherits (Linux copies them at accept): a receive that
  waits longer for the next byte of headers or body fails, and the connection is closed.
- A request whose body will be refused unread (over DEITKIT_MAX_BODY_BYTES) closes its
  connection with `Connection: close` instead of leaving it half-read.

gunicorn loads this module in the master before any worker starts, so it imports nothing
heavy (no torch): `deitkit.serving` exports lazily for that reason.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import struct
from dataclasses import dataclass

from deitkit.errors import ConfigError
from deitkit.serving.limits import serving_limits_from_env

# What `deitkit serve` sets and endpoints/online/deployment.yml's environment_variables set.
GUNICORN_CMD_ARGS = "--config python:deitkit.serving.gunicorn_conf"
THREADS_ENV = "DEITKIT_SERVER_THREADS"
READ_TIMEOUT_ENV = "DEITKIT_READ_TIMEOUT"


@dataclass(frozen=True)
class ServerSettings:
    """How one gunicorn worker treats its connections.

    Attributes:
        threads: Connections one worker reads at the same time. 4 leaves room for a few
            stuck clients beside the one being scored; each waiting request holds its body
            (at most DEITKIT_MAX_BODY_BYTES) until the scorer is free.
        read_timeout: Seconds a connection may stay silent inside its headers or body, and
            may refuse to take the answer, before it is dropped. 30 s is long for a client
            that is sending (a gap between two packets) and short beside the 300 s worker
            timeout that bounded a stuck client before.
    """

    threads: int = 4
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        threads = self.threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"ServerSettings.threads must be an integer >= 1, got {threads!r}")
        timeout = self.read_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ConfigError(f"ServerSettings.read_timeout must be seconds > 0, got {timeout!r}")


def server_settings_from_env() -> ServerSettings:
    """ServerSettings from DEITKIT_SERVER_THREADS and DEITKIT_READ_TIMEOUT, where set.

    Raises:
        ConfigError: a variable is not a positive number (an integer for threads), naming the
            variable and its value.
    """
    values: dict[str, int | float] = {}
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ConfigError(f"{THREADS_ENV}={threads!r} is invalid: expected an integer >= 1")
        values["threads"] = int(threads)
    timeout = os.environ.get(READ_TIMEOUT_ENV, "").strip()
    if timeout:
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(
                f"{READ_TIMEOUT_ENV}={timeout!r} is invalid: expected a number of seconds > 0"
            )
        values["read_timeout"] = seconds
    return ServerSettings(**values)


def set_socket_timeout(sock: socket.socket, seconds: float) -> None:
    """Make each blocking receive and send on `sock` fail after `seconds` without progress.

    Set on a listening socket, it holds for the connections accepted from it; unlike
    `sock.settimeout` it survives gunicorn's `setblocking(True)` on each connection.
    """
    # A zero timeval means "no timeout": the smallest one kept is 1 microsecond.
    whole, micros = divmod(max(round(seconds * 1_000_000), 1), 1_000_000)
    value = struct.pack("ll", whole, micros)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


class QuietTimeouts(logging.Filter):
    """Logs a connection dropped by the socket timeout in one line, not as a traceback.

    gthread reports it as "Socket error processing request." with the EAGAIN traceback, at
    error level: noise for what is the timeout doing its job.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BlockingIOError | TimeoutError):
            record.msg = "closed a connection that made no progress for %g s (%s)"
            record.args = (self.seconds, READ_TIMEOUT_ENV)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


@functools.cache
def _max_body_bytes() -> int:
    return serving_limits_from_env().max_body_bytes


_settings = server_settings_from_env()

# gunicorn reads the module's names that match its settings; nothing else here may match one.
worker_class = "gthread"
threads = _settings.threads


def post_worker_init(worker) -> None:
    """gunicorn hook, in each worker before it accepts: time out its listening sockets.

    Set in every worker (the sockets are shared, the value is the same), so it holds for
    workers started after a reload as well.
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
