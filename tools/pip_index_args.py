"""Print pip's package-source settings here as `uv pip install` arguments (uv reads no pip.conf).

`make setup` installs with uv; so that it takes packages from where pip would on this machine
(a local index, a wheel folder, a global constraint file), it passes these arguments. With no
such settings it prints nothing and uv uses PyPI, as pip does.
Usage: `python tools/pip_index_args.py [--sources] [ARG...]` (runs `python -m pip config list`);
ARGs (e.g. the Makefile's TORCH_PIP_ARGS) are printed after the settings, and an `--index-url`
among them replaces pip's, as on pip's command line. `--sources` leaves out pip's constraint
file: installing a hash-checked lock takes exact pins only (uv refuses a range beside them).
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

# pip option → uv option; the list-valued ones hold several values, split on white space.
OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
# Which scope wins when several set one option: the environment (PIP_*), then pip.conf's
# [install] section, then [global] (pip's own precedence).
SCOPES = {"global": 1, "install": 2, ":env:": 3}
TRUE = {"1", "true", "yes", "on"}


def uv_args(pip_config: str, explicit: list[str] = (), *, constraints: bool = True) -> list[str]:
    """The uv arguments for the settings in `pip config list`'s output, then `explicit`.

    Args:
        pip_config: lines `scope.option='value'` as `pip config list` prints them.
        explicit: arguments given on the command line; an index URL among them replaces
            the configured one (uv takes only one).
        constraints: whether to pass pip's constraint file on (not for a hash-checked lock).
    """
    settings: dict[str, tuple[int, str]] = {}
    for line in pip_config.splitlines():
        key, equals, raw = line.partition("=")
        scope, _, option = key.strip().rpartition(".")
        rank = SCOPES.get(scope)
        if not equals or rank is None:
            continue
        value = ast.literal_eval(raw.strip())
        if rank >= settings.get(option, (0, ""))[0]:
            settings[option] = (rank, value)
    if any(arg in ("-i", "--index-url") or arg.startswith("--index-url=") for arg in explicit):
        settings.pop("index-url", None)
    args = []
    if settings.get("no-index", (0, ""))[1].lower() in TRUE:
        args.append("--no-index")
    for option, flag in OPTIONS.items():
        if option in settings and (constraints or option != "constraint"):
            for value in settings[option][1].split():
                args += [flag, value]
    return args + list(explicit)


def main() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    args = sys.argv[1:]
    sources_only = args[:1] == ["--sources"]
    # No pip, or a pip.conf pip cannot read: uv's defaults (PyPI), as on a plain machine.
    config = done.stdout if done.returncode == 0 else ""
    print(shlex.join(uv_args(config, args[sources_only:], constraints=not sources_only)))


if __name__ == "__main__":
    main()
