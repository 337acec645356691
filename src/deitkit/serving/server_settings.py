"""How the server treats connections: threads per worker, the read timeout, and their env."""

# azmlinfsrv alone runs one sync gunicorn worker without a read timeout: one client that
# connects and stays silent (or stops inside its headers or body) holds the worker until the
# 300 s worker timeout. `deitkit.serving.gunicorn_conf`, loaded through GUNICORN_CMD_ARGS
# (which gunicorn reads itself) by `deitkit serve` and the online deployment alike, applies
# these settings instead (docs/serving.md, "Slow and idle clients").

from __future__ import annotations

import logging
import math
import socket
import struct
from dataclasses import dataclass

from deitkit.env_numbers import env_numbers
from deitkit.errors import ConfigError

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
    values = env_numbers(
        {"threads": THREADS_ENV, "read_timeout": READ_TIMEOUT_ENV}, {"read_timeout": "seconds"}
    )
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
