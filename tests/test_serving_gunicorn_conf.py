"""deitkit's gunicorn settings: env overrides, the socket timeout, the log filter, the YAML."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deitkit.errors import ConfigError
from deitkit.serving import gunicorn_conf
from deitkit.serving.gunicorn_conf import (
    GUNICORN_CMD_ARGS,
    QuietTimeouts,
    ServerSettings,
    server_settings_from_env,
    set_socket_timeout,
)
from deitkit.serving.limits import serving_limits_from_env

DEPLOYMENT = Path(__file__).parents[1] / "endpoints" / "online" / "deployment.yml"


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


def test_gunicorn_sees_only_the_settings_meant_for_it():
    from gunicorn.config import Config

    settings = Config().settings
    assert sorted(k for k in vars(gunicorn_conf) if k in settings) == [
        "post_worker_init",
        "pre_request",
        "threads",
        "worker_class",
    ]


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


def test_a_body_refused_unread_closes_its_connection(monkeypatch):
    class Request:
        method, path = "POST", "/score"

        def __init__(self, headers):
            self.headers, self.must_close = headers, False

    class Worker:
        log = logging.getLogger("test")

    monkeypatch.setenv("DEITKIT_MAX_BODY_BYTES", "1000")
    gunicorn_conf._max_body_bytes.cache_clear()
    try:
        for headers, closes in [
            ([("CONTENT-LENGTH", "1001")], True),
            ([("HOST", "x"), ("CONTENT-LENGTH", "1000")], False),  # at the cap: read
            ([("TRANSFER-ENCODING", "chunked")], False),  # capped while read instead
            ([], False),
        ]:
            request = Request(headers)
            gunicorn_conf.pre_request(Worker(), request)
            assert request.must_close is closes, headers
    finally:
        gunicorn_conf._max_body_bytes.cache_clear()


@pytest.mark.timeout(120)
def test_gunicorn_loads_the_module_from_GUNICORN_CMD_ARGS_without_torch():
    code = (
        "import json, sys\n"
        "from gunicorn.app.wsgiapp import WSGIApplication\n"
        "sys.argv = ['gunicorn', 'app:app']\n"
        "app = WSGIApplication()\n"
        "cfg = app.cfg\n"
        "print(json.dumps({'worker': cfg.worker_class_str, 'threads': cfg.threads,\n"
        "    'hook': cfg.post_worker_init.__module__, 'torch': 'torch' in sys.modules}))\n"
    )
    env = {**os.environ, "GUNICORN_CMD_ARGS": GUNICORN_CMD_ARGS, "DEITKIT_SERVER_THREADS": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=100
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {
        "worker": "gthread",
        "threads": 3,
        "hook": "deitkit.serving.gunicorn_conf",
        "torch": False,  # the master stays light: deitkit.serving exports lazily
    }


def test_the_online_deployment_sets_what_deitkit_serve_uses(monkeypatch):
    from azure.ai.ml import load_online_deployment

    deployment = load_online_deployment(DEPLOYMENT)
    variables = deployment.environment_variables
    assert variables["GUNICORN_CMD_ARGS"] == GUNICORN_CMD_ARGS
    assert yaml.safe_load(DEPLOYMENT.read_text())["environment_variables"] == variables
    # Every deitkit variable the YAML sets is one the server accepts.
    assert {name for name in variables if name.startswith("DEITKIT_")} == {"DEITKIT_ALLOW_URLS"}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert serving_limits_from_env().allow_urls is True
    server_settings_from_env()
