"""Command components against a CLI: flags, values, types, required options, defaults."""

from __future__ import annotations

import click
import pytest

from deitkit.assets.commands import check_command, parse_invocations
from deitkit.assets.yaml_loading import Problems


@click.group()
def tiny_cli() -> None:
    """A CLI with one command of each kind of parameter the checks tell apart."""


@tiny_cli.command("train")
@click.argument("data")
@click.option("--model", required=True)
@click.option("--epochs", type=click.IntRange(1, 100), default=1)
@click.option("--task", type=click.Choice(["a", "b"]), default="a")
@click.option("--ort/--no-ort", default=False)
@click.option("--resume", type=click.BOOL, is_flag=False, flag_value=True, default=True)
def train(**_) -> None:
    """Stands in for `deitkit finetune`."""


def command_problems(command: str, **inputs) -> list[str]:
    spec = {"command": command, "inputs": inputs, "outputs": {"out": {"type": "uri_folder"}}}
    found = Problems("spec.yaml")
    check_command(spec, found, tiny_cli)
    return list(found)


def test_shell_around_the_cli_is_left_alone():
    command = (
        "RANK=0 deitkit train ${{inputs.data}} --model m $[[--epochs ${{inputs.n}}]] "
        '&& { [ "${RANK:-0}" != 0 ] || cp -R ${{outputs.out}}/x/. /y/; }'
    )
    assert command_problems(command, data={"type": "uri_folder"}, n={"type": "integer"}) == []
    (call,) = parse_invocations(command)
    assert [w.text for w in call.rest][:4] == ["train", "${{inputs.data}}", "--model", "m"]
    assert [w.optional for w in call.rest][3:6] == [False, True, True]


@pytest.mark.parametrize(
    "command, inputs, expected",
    [
        (
            "deitkit train d --model m --ort ${{inputs.flag}}",
            {"flag": {"type": "boolean"}},
            "`deitkit train` --ort is a switch and takes no value, got ${{inputs.flag}}",
        ),
        (
            "deitkit train d --model m --resume ${{inputs.flag}} --no-ort",
            {"flag": {"type": "boolean"}},
            None,
        ),
        (
            "deitkit train d --model m --resume ${{inputs.flag}}",
            {"flag": {"type": "string"}},
            "input 'flag' (string) feeds `deitkit train` --resume, which takes boolean",
        ),
        (
            "deitkit train d $[[--model ${{inputs.m}}]]",
            {"m": {"type": "string", "optional": True}},
            "`deitkit train` requires --model; the command passes it only inside $[[...]]",
        ),
        (
            "deitkit train d $[[--model ${{inputs.m}}]]",
            {"m": {"type": "string", "default": "x"}},
            None,
        ),
        (
            "deitkit train d --model m --task ${{inputs.t}}",
            {"t": {"type": "string"}},
            "inputs.t: feeds `deitkit train` --task, a choice of a, b: give it an enum",
        ),
        (
            "deitkit train d --model m --epochs ${{inputs.n}}",
            {"n": {"type": "integer", "default": 0}},
            "inputs.n.default: 0 for `deitkit train` --epochs: 0 is not in the range 1<=x<=100.",
        ),
        (
            "deitkit train d --model m --epochs ${{inputs.nope}}",
            {},
            "--epochs uses ${{inputs.nope}}, which the component lacks",
        ),
        ("deitkit train --model m", {}, "`deitkit train` takes DATA; the command gives 0 of them"),
        ("deitkit train d --model", {}, "`deitkit train` --model needs a value"),
        ("deitkit", {}, "`deitkit` needs a command after it"),
    ],
)
def test_command_checks(command, inputs, expected):
    found = command_problems(command, **inputs)
    if expected is None:
        assert found == []
    else:
        assert any(expected in p for p in found), found


@tiny_cli.command("tune")
@click.option("--model", required=True)
@click.option("--rate", type=float, default=0.5)
@click.option("--size", type=int, default=None)
@click.option("--side", type=int)  # no default given at all (click holds a sentinel)
@click.option("--task", type=click.Choice(["a", "b"]), default="a")
@click.option("--resume", type=click.BOOL, is_flag=False, flag_value=True, default=True)
def tune(**_) -> None:
    """Options with defaults of each kind the defaults check converts."""


@pytest.mark.parametrize(
    "flag, spec, expected",
    [
        ("--rate", {"type": "number", "default": 0.5}, None),
        (
            "--rate",
            {"type": "number", "default": 1},
            "inputs.x.default: 1, but `deitkit tune` --rate defaults to 0.5",
        ),
        ("--size", {"type": "integer", "optional": True}, None),
        (
            "--size",
            {"type": "integer", "default": -1},
            "inputs.x.default: -1, but `deitkit tune` --size has no default",
        ),
        (
            "--side",
            {"type": "integer", "default": 0},
            "inputs.x.default: 0, but `deitkit tune` --side has no default",
        ),
        ("--task", {"type": "string", "enum": ["a", "b"], "default": "a"}, None),
        ("--task", {"type": "string", "enum": ["a", "b"], "default": "b"}, "'b', but"),
        ("--resume", {"type": "boolean", "default": True}, None),
        ("--resume", {"type": "boolean", "default": "true"}, None),
        (
            "--resume",
            {"type": "boolean", "default": False},
            "False, but `deitkit tune` --resume defaults to True",
        ),
        ("--model", {"type": "string", "default": "m"}, None),  # required: no default of its own
    ],
)
def test_input_defaults_must_be_the_options_own(flag, spec, expected):
    command = "deitkit tune --model m" if flag != "--model" else "deitkit tune"
    found = command_problems(f"{command} $[[{flag} ${{{{inputs.x}}}}]]", x=spec)
    if expected is None:
        assert found == []
    else:
        assert any("spec.yaml: inputs.x.default: " in p and expected in p for p in found), found
