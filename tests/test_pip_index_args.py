"""tools/pip_index_args.py: pip's package sources as `uv pip install` arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.pip_index_args import uv_args

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "pip_index_args.py"
# What `pip config list` prints on this project's machines.
HERE = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels'
"""


def test_sources_become_uv_arguments_and_other_settings_are_left_out():
    assert uv_args(HERE) == [
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/pypi-more/simple",
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/xdg/pip/constraints.txt",
    ]


def test_no_settings_give_no_arguments_so_uv_uses_pypi():
    assert uv_args("") == []
    assert uv_args(":env:.default-timeout='60'\nnot a setting\n") == []


def test_environment_beats_install_section_beats_global():
    config = (
        "global.index-url='https://global.example/simple'\n"
        ":env:.index-url='https://env.example/simple'\n"
        "install.index-url='https://install.example/simple'\n"
        "install.find-links='/a\\n/b'\n"
        "global.no-index='true'\n"
    )
    assert uv_args(config) == [
        "--no-index",
        "--index-url",
        "https://env.example/simple",
        "--find-links",
        "/a",
        "--find-links",
        "/b",
    ]


@pytest.mark.parametrize("given", [["--index-url", "https://t/cpu"], ["--index-url=https://t/cpu"]])
def test_an_index_url_on_the_command_line_replaces_the_configured_one(given):
    config = "global.index-url='https://mirror/simple'\nglobal.find-links='/w'\n"
    assert uv_args(config, given) == ["--find-links", "/w", *given]


@pytest.mark.timeout(60)
def test_the_script_prints_pips_settings_as_one_shell_line():
    # No pip.conf at all (pip's switch for that), one source from the environment.
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "/srv/wheels", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--index-url", "https://t/cpu"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "--find-links /srv/wheels --index-url https://t/cpu\n"


def test_a_lock_install_takes_the_sources_without_pips_constraint_file():
    # uv refuses pip's `torch<=2.14.1` beside a hash-checked lock's exact pins.
    assert uv_args(HERE, ["--index-url", "https://t/cpu"], constraints=False) == [
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/pypi-more/simple",
        "--find-links",
        "/opt/wheels",
        "--index-url",
        "https://t/cpu",
    ]


@pytest.mark.timeout(60)
def test_the_script_leaves_the_constraint_file_out_when_asked_for_sources():
    env = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CONSTRAINT": "/etc/c.txt",
        "PIP_FIND_LINKS": "/w",
        "PATH": "/usr/bin:/bin",
    }
    run = [sys.executable, str(SCRIPT)]
    full = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    sources = subprocess.run([*run, "--sources"], env=env, capture_output=True, text=True)
    assert full.stdout == "--find-links /w --constraint /etc/c.txt\n"
    assert sources.stdout == "--find-links /w\n"
