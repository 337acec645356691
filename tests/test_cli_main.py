"""Tests for the CLI's error contract (cli/main.py, cli/output_errors.py): exit 2, one line."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from deitkit.cli.main import cli
from deitkit.cli.output_errors import as_output_error


def _denied(path: Path | str, code: int = errno.EACCES) -> OSError:
    return OSError(code, os.strerror(code), str(path))


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("out/metrics.json", errno.EACCES),  # under the output
        ("out", errno.EROFS),  # the output itself
        (".out.1234.tmp", errno.ENOSPC),  # a staging file beside it
        ("parent", errno.EACCES),  # a folder above it, being created
    ],
)
def test_os_errors_on_the_output_become_one_line(tmp_path, where, code):
    output = tmp_path / "parent" / "out"
    path = output.parent / where if where != "parent" else output.parent

    err = as_output_error(_denied(path, code), {"output": output})

    assert str(err) == f"{path}: {os.strerror(code)} (writing --output {output})"


def test_a_file_where_a_folder_goes_is_named_as_such(tmp_path):
    (tmp_path / "file").write_text("x")
    output = tmp_path / "file" / "out"

    err = as_output_error(_denied(tmp_path / "file", errno.EEXIST), {"out_dir": output})

    assert str(err) == (
        f"{tmp_path / 'file'}: is a file, where a folder has to be created (writing --out {output})"
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("out/model/config.json", errno.ENOENT),  # a file deitkit should have written: a bug
        ("/etc/deitkit-elsewhere", errno.EACCES),  # not an output
        (None, errno.EACCES),  # no path, and not stdout
    ],
)
def test_other_os_errors_stay_bugs(tmp_path, path, code):
    err = OSError(code, os.strerror(code), None if path is None else str(tmp_path / path))
    assert as_output_error(err, {"output": tmp_path / "out", "model_path": None}) is None


def test_the_cli_prints_one_line_and_exits_2_for_an_output_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")

    result = CliRunner().invoke(
        cli, ["data", "sample", "digits", "--out", str(tmp_path / "file/d")]
    )

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {tmp_path / 'file'}: is a file, where a folder has to be created "
        f"(writing --out {tmp_path / 'file/d'})\n"
    )


def test_an_os_error_elsewhere_keeps_its_traceback(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise _denied("/etc/deitkit-elsewhere")

    monkeypatch.setattr("deitkit.data.digits.write_digits", fail)

    result = CliRunner().invoke(cli, ["data", "sample", "digits", "--out", str(tmp_path / "d")])

    assert result.exit_code == 1 and isinstance(result.exception, PermissionError)


def test_a_full_stdout_is_one_line_and_exit_2(monkeypatch):
    from click.testing import _NamedTextIOWrapper

    write = _NamedTextIOWrapper.write

    def full(self, text):
        if self.name == "<stdout>":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, text)

    monkeypatch.setattr(_NamedTextIOWrapper, "write", full)

    result = CliRunner().invoke(cli, ["sku", "check", "Standard_DS3_v2", "--for", "inference"])

    assert result.exit_code == 2
    assert result.stderr == "error: <stdout>: No space left on device\n"


def _commands(command: click.Command, path: tuple[str, ...] = ("deitkit",)):
    """Every command of the CLI with its path, groups included."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_option_of_every_command_has_help_text():
    missing = [
        f"{' '.join(path)} {option.opts[0]}"
        for path, command in _commands(cli)
        for option in command.params
        if isinstance(option, click.Option) and not (option.help or "").strip()
    ]
    assert len(list(_commands(cli))) > 30  # the walk reaches the nested groups
    assert not missing, f"options without help: {missing}"


# Options that name a local file or folder and only that: --help shows them as paths.
LOCAL_PATH_OPTIONS = {"--out", "--output", "--train", "--validation", "--deepspeed", "--config"}


def test_local_path_options_are_typed_as_paths():
    untyped = [
        f"{' '.join(path)} {option.opts[0]}"
        for path, command in _commands(cli)
        for option in command.params
        if isinstance(option, click.Option)
        and option.opts[0] in LOCAL_PATH_OPTIONS
        and not isinstance(option.type, click.Path)
    ]
    assert not untyped, f"path options typed as text: {untyped}"


def test_options_read_deitkit_environment_variables(monkeypatch, tmp_path):
    import deitkit.client_requests

    monkeypatch.setattr(
        deitkit.client_requests, "request_body", lambda images, form, params: params
    )
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["request", str(image)], env={"DEITKIT_REQUEST_TOP_K": "3"})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == '{"top_k": 3}'
