"""gunicorn's config module: what gunicorn sees, its hooks, the deployment YAML that loads it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deitkit.serving import gunicorn_conf
from deitkit.serving.limits import serving_limits_from_env
from deitkit.serving.server_settings import GUNICORN_CMD_ARGS, server_settings_from_env

DEPLOYMENT = Path(__file__).parents[1] / "endpoints" / "online" / "deployment.yml"


def test_gunicorn_sees_only_the_settings_meant_for_it():
    from gunicorn.config import Config

    settings = Config().settings
    assert sorted(k for k in vars(gunicorn_conf) if k in settings) == [
        "post_worker_init",
        "pre_request",
        "threads",
        "worker_class",
    ]


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
