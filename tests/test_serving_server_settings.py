"""Server settings: env overrides and invalid values, the socket timeout, the one-line log."""

from __future__ import annotations

import logging
import socket

import pytest

from deitkit.errors import ConfigError
from deitkit.serving.server_settings import (
    QuietTimeouts,
    ServerSettings,
    server_settings_from_env,
    set_socket_timeout,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("DEITKIT_SERVER_THREADS", "DEITKIT_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_and_overrides(monkeypatch):
    assert server_settings_from_env() == ServerSettings(threads=4, read_timeout=30.0)
    monkeypatch.setenv("DEITKIT_SERVER_THREADS", " 8 ")
    monkeypatch.setenv("DEITKIT_READ_TIMEOUT", "2.5")
    assert server_settings_from_env() == ServerSettings(threads=8, read_timeout=2.5)
    monkeypatch.setenv("DEITKIT_READ_TIMEOUT", "")  # empty keeps the default
    assert server_settings_from_env().read_timeout == 30.0


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("DEITKIT_SERVER_THREADS", "0", "an integer >= 1"),
        ("DEITKIT_SERVER_THREADS", "two", "an integer >= 1"),
        ("DEITKIT_SERVER_THREADS", "1.5", "an integer >= 1"),
        ("DEITKIT_READ_TIMEOUT", "0", "a number of seconds > 0"),
        ("DEITKIT_READ_TIMEOUT", "-1", "a number of seconds > 0"),
        ("DEITKIT_READ_TIMEOUT", "inf", "a number of seconds > 0"),
        ("DEITKIT_READ_TIMEOUT", "soon", "a number of seconds > 0"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        server_settings_from_env()
    assert str(caught.value) == f"{name}={value!r} is invalid: expected {expected}"


def test_settings_check_their_own_fields():
    with pytest.raises(ConfigError, match="threads must be an integer >= 1, got 0"):
        ServerSettings(threads=0)
    with pytest.raises(ConfigError, match="read_timeout must be seconds > 0, got nan"):
        ServerSettings(read_timeout=float("nan"))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("seconds", [0.3, 1e-9])
def test_accepted_connections_inherit_the_listeners_timeout(seconds):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        set_socket_timeout(listener, seconds)
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                accepted.setblocking(True)  # what gunicorn does; a Python timeout would reset
                assert accepted.gettimeout() is None
                client.sendall(b"GET / HTTP/1.1\r\n")
                assert accepted.recv(100) == b"GET / HTTP/1.1\r\n"
                # The client goes quiet: the blocking receive fails instead of waiting forever.
                with pytest.raises(BlockingIOError):
                    accepted.recv(100)


def test_a_dropped_connection_is_logged_in_one_line():
    def record(exc: BaseException | None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord(
            "gunicorn.error", logging.ERROR, __file__, 1, "Socket error processing request.", (),
            info,
        )  # fmt: skip

    quiet = QuietTimeouts(2.0)
    timed_out = record(BlockingIOError(11, "Resource temporarily unavailable"))
    assert quiet.filter(timed_out)
    assert (timed_out.levelname, timed_out.exc_info) == ("INFO", None)
    assert timed_out.getMessage() == (
        "closed a connection that made no progress for 2 s (DEITKIT_READ_TIMEOUT)"
    )
    other = record(ValueError("a real fault"))
    assert quiet.filter(other)
    assert other.levelname == "ERROR" and other.exc_info is not None
