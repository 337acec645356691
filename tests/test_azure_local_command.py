"""deitkit.azure.local: commands rendered as Azure ML renders them, input values checked."""

from __future__ import annotations

import pytest
from azure.ai.ml import Input

from deitkit.azure.local.command import render_command, render_value
from deitkit.azure.local.expressions import Binding, whole_binding
from deitkit.azure.local.values import check_names, check_value, with_defaults
from deitkit.errors import ConfigError

COMMAND = (
    "deitkit finetune --train ${{inputs.data}} $[[--epochs ${{inputs.epochs}}]] "
    "$[[--lr ${{inputs.lr}}]] $[[--flag ${{inputs.flag}}]] --output ${{outputs.out}}"
)


def _declared():
    return {
        "data": Input(type="mltable"),
        "epochs": Input(type="integer", optional=True, default=15),
        "lr": Input(type="number", optional=True),
        "flag": Input(type="boolean", optional=True, default=True),
    }


def _render(**given):
    values = with_defaults(_declared(), given)
    rendered = {k: None if v is None else render_value(v) for k, v in values.items()}
    return render_command(COMMAND, rendered, {"out": "/o"}, where="spec.yaml")


def test_optional_groups_render_with_defaults_and_drop_without_a_value():
    assert _render(data="/d") == (
        "deitkit finetune --train /d --epochs 15  --flag True --output /o"
    )


def test_given_values_render_as_the_sdk_sends_them():
    rendered = _render(data="/d", epochs=2, lr=1e-3, flag=False)
    assert rendered == (
        "deitkit finetune --train /d --epochs 2 --lr 0.001 --flag False --output /o"
    )


def test_a_group_is_dropped_when_any_input_in_it_has_no_value():
    command = "run $[[--pair ${{inputs.a}} ${{inputs.b}}]] end"
    assert render_command(command, {"a": "1", "b": None}, {}, where="x") == "run  end"
    assert render_command(command, {"a": "1", "b": "2"}, {}, where="x") == "run --pair 1 2 end"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("run ${{inputs.nope}}", r"uses \$\{\{inputs.nope\}\}, which is no input or output"),
        ("run ${{search_space.lr}}", "no input or output"),
        ("run ${{inputs.b}}", "input 'b' has no value but the command uses it outside"),
    ],
)
def test_bad_commands_are_refused_naming_the_expression(command, message):
    with pytest.raises(ConfigError, match=message):
        render_command(command, {"a": "1", "b": None}, {}, where="spec.yaml")


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("integer", "3", 3),
        ("integer", "10.0", 10),  # the backend sends integers as 10.0
        ("integer", 4, 4),
        ("number", "1e-3", 0.001),
        ("number", 2, 2),
        ("boolean", "TRUE", True),
        ("boolean", "false", False),
        ("boolean", True, True),
        ("string", "x y", "x y"),
        ("string", 32, 32),
    ],
)
def test_values_are_parsed_by_type(kind, given, expected):
    parsed = check_value("v", Input(type=kind), given, origin="--set v")
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("decl", "given", "expected"),
    [
        (Input(type="integer"), "many", "expected an integer"),
        (Input(type="integer"), "1.5", "expected an integer"),
        (Input(type="integer"), True, "expected an integer"),
        (Input(type="number"), "nan", "expected a number"),
        (Input(type="boolean"), "yes", "expected true or false"),
        (Input(type="boolean"), 1, "expected true or false"),
        (Input(type="string", enum=["32", "16"]), "8", "expected one of 32, 16"),
        (Input(type="integer", min=1), "0", r"\(integer, min 1\)"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_the_input(decl, given, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        check_value("epochs", decl, given, origin="--set epochs")
    assert str(err.value).startswith(f"--set epochs: {given!r} does not fit input 'epochs'")
    assert "\n" not in str(err.value)


def test_unknown_names_list_the_inputs():
    with pytest.raises(ConfigError, match=r"--set lr2: spec.yaml has no input 'lr2'; its inputs: "):
        check_names(_declared(), {"lr2": "1"}, origin="--set", where="spec.yaml")


def test_whole_bindings():
    assert whole_binding("${{parent.inputs.x}}", where="w") == Binding("parent.inputs", "x")
    assert whole_binding(" ${{ parent.jobs.a.outputs.y }} ", where="w") == Binding(
        "parent.jobs", "y", job="a"
    )
    assert str(Binding("parent.jobs", "y", job="a")) == "${{parent.jobs.a.outputs.y}}"
    assert whole_binding("plain", where="w") is None and whole_binding(3, where="w") is None
    with pytest.raises(ConfigError, match=r"w: 'run_\$\{\{parent.inputs.x\}\}' is not a"):
        whole_binding("run_${{parent.inputs.x}}", where="w")
