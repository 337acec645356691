"""Run azureml-inference-server-http (what Azure ML runs) on loopback with deitkit's scorer."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

from deitkit.errors import ConfigError
from deitkit.serving.server_settings import GUNICORN_CMD_ARGS, server_settings_from_env

ENTRY_SCRIPT = Path(__file__).with_name("score.py")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001  # azmlinfsrv's own default
# How a DeitkitError raised by the scoring script's init() ends its traceback in the log.
_DEITKIT_ERROR = re.compile(r"^deitkit\.errors\.\w+: (.*)$")


def run_server(
    model_dir: str | Path,
    port: int = DEFAULT_PORT,
    *,
    host: str = DEFAULT_HOST,
    workers: int = 1,
    entry_script: str | Path = ENTRY_SCRIPT,
) -> NoReturn:
    """Serve `model_dir` with azmlinfsrv in this process until it is stopped.

    Does what the `azmlinfsrv` command does, except that it binds `host` (azmlinfsrv itself
    always binds every interface), with deitkit's gunicorn settings
    (`deitkit.serving.gunicorn_conf`: threaded workers, a read timeout), as the online
    deployment sets them. `GET /` answers `Healthy`; `POST /score` scores.

    Args:
        model_dir: A packaged model (deitkit's or a catalog MLflow model), a checkpoint, or a
            folder holding one (Azure's layout).
        port: TCP port.
        host: Interface to bind; the loopback default keeps the server off the network.
        workers: gunicorn worker processes; each loads its own copy of the model.
        entry_script: The scoring script (default: `deitkit.serving.score`).

    Raises:
        ConfigError: no model is found in `model_dir`, `workers` is below 1, or
            DEITKIT_SERVER_THREADS or DEITKIT_READ_TIMEOUT is invalid.
    """
    from azureml_inference_server_http import amlserver
    from azureml_inference_server_http.constants import PACKAGE_ROOT
    from azureml_inference_server_http.log_config import load_logging_config

    from deitkit.inference.mlflow_layouts import model_files
    from deitkit.inference.packaged import find_model_dir

    # Fail here, before gunicorn, with a one-line error (an unreadable MLflow model included).
    model_files(find_model_dir(model_dir))
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    server_settings_from_env()  # an invalid value fails here in one line, not in gunicorn
    entry_script = Path(entry_script).resolve()
    # azmlinfsrv reads a config.json from its app root (default: the working directory, which
    # may well be a checkpoint folder); the entry script's folder has none.
    os.environ["AML_APP_ROOT"] = str(entry_script.parent)
    os.environ.pop("SEPERATE_HEALTH_ENDPOINT", None)  # one port for health and scoring
    _use_deitkit_gunicorn_conf()
    _disable_control_socket()
    sys.argv = [
        "azmlinfsrv",
        "--entry_script",
        str(entry_script),
        "--model_dir",
        str(Path(model_dir).resolve()),
        "--port",
        str(port),
        "--worker_count",
        str(workers),
    ]
    args = amlserver.parse_arguments()
    load_logging_config(PACKAGE_ROOT)
    amlserver.merge_configuration(args)
    amlserver.validate_environment_variables()
    amlserver.set_path_variable()
    amlserver.print_server_info()
    amlserver.print_server_settings()
    print(f"Liveness: GET  http://{host}:{port}/\nScore:    POST http://{host}:{port}/score\n")
    if sys.platform == "win32":
        from azureml_inference_server_http import amlserver_win as backend
    else:
        from azureml_inference_server_http import amlserver_linux as backend
    backend.run(host, port, workers)
    sys.exit(0)


def _use_deitkit_gunicorn_conf() -> None:
    """Put deitkit's gunicorn settings into GUNICORN_CMD_ARGS, as the online deployment does.

    A `--config` (or `-c`) already there is the operator's choice and is kept instead.
    """
    extra = os.environ.get("GUNICORN_CMD_ARGS", "")
    words = shlex.split(extra)
    if not any(w in ("-c", "--config") or w.startswith("--config=") for w in words):
        os.environ["GUNICORN_CMD_ARGS"] = f"{GUNICORN_CMD_ARGS} {extra}".strip()


def _disable_control_socket() -> None:
    """Keep gunicorn (25 and later) from opening ~/.gunicorn/gunicorn.ctl.

    Two local servers would otherwise fight over that one socket path; nothing here uses it.
    """
    from gunicorn.config import KNOWN_SETTINGS

    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        extra = os.environ.get("GUNICORN_CMD_ARGS", "")
        if "control-socket" not in extra:
            os.environ["GUNICORN_CMD_ARGS"] = f"{extra} --no-control-socket".strip()


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalServer:
    """`deitkit serve` in a child process, for tests, samples and the quickstart.

    Use it as a context manager: it starts the server, waits until `GET /` answers 200, and
    stops the server (and its workers) on exit.

    Args:
        model_dir: What `deitkit serve --model` takes.
        port: TCP port on 127.0.0.1; None: a free one.
        workers: gunicorn workers.
        env: Extra environment variables for the server (limits, for instance).
        startup_timeout: Seconds to wait for the first healthy answer.
        log_file: Where the server's output goes (kept); None: a temporary file.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        port: int | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        startup_timeout: float = 180.0,
        log_file: str | Path | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.port = port or free_port()
        self.url = f"http://{DEFAULT_HOST}:{self.port}"
        self.workers = workers
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.log_file = Path(log_file) if log_file is not None else None
        if self.log_file is not None:
            self._log = self.log_file.open("w+b")
        else:
            self._log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in __exit__

    def start(self) -> LocalServer:
        """Start the server and wait until it is healthy.

        Raises:
            ConfigError: it exits or stays unhealthy for `startup_timeout`, with its output.
        """
        command = [
            sys.executable,
            "-m",
            "deitkit.cli.serve",
            "--model",
            str(self.model_dir),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the workers too
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(
                    f"the server exited with code {self.process.returncode}: {self.failure()}"
                )
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise ConfigError(
            f"the server was not healthy after {self.startup_timeout:g} s: {self.failure()}"
        )

    def healthy(self) -> bool:
        """True when `GET /` answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def output(self, limit: int = 20_000) -> str:
        """The last `limit` characters the server printed."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def failure(self, tail: int = 20) -> str:
        """Why the server failed: the deitkit error its init() raised, else its last lines.

        Either way it ends with where the whole log is, when it is kept in a file.
        """
        lines = self.output().splitlines()
        errors = [m.group(1) for m in map(_DEITKIT_ERROR.match, lines) if m]
        reason = errors[-1] if errors else "\n" + "\n".join(lines[-tail:])
        return f"{reason} (server log: {self.log_file})" if self.log_file else reason

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL if it lingers."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._log.close()
