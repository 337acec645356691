"""Component = CLI: every recipe field of `deitkit finetune` is a component and a pipeline input.

The command lines are rendered as Azure ML renders them (defaults applied, each `$[[...]]`
dropped when an input in it has no value, values as `str()` of the YAML value) and parsed by
the real `deitkit finetune` options.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from deitkit.assets.commands import parse_invocations
from deitkit.cli.finetune import finetune as finetune_command
from deitkit.cli.main import cli
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig

COMPONENTS = Path(__file__).parents[1] / "components"
PIPELINES = {Task.MULTICLASS: "pipeline_multiclass", Task.MULTILABEL: "pipeline_multilabel"}
# FinetuneConfig fields that no component input sets, each with the reason.
NOT_INPUTS = {
    "output": "the folder Azure ML gives the component's pytorch_model_folder output",
    # training_data and validation_data are MLTable inputs of JSONL rows (image_url, label):
    # their columns are fixed; Hugging Face datasets are read by the CLI (docs/data.md).
    "image_column": "a Hugging Face dataset's column; the component's inputs are MLTable folders",
    "label_column": "a Hugging Face dataset's column; the component's inputs are MLTable folders",
}
# Fields a pipeline sets itself (a literal on its finetune step), each with the reason.
SET_BY_PIPELINE = {"task": "each pipeline is for one task; its task_name is a literal"}
# Fields a pipeline deliberately does not offer, each with the reason.
NOT_OFFERED = {
    Task.MULTICLASS: {
        "tune_thresholds": "a multiclass model takes its most probable label (finetune refuses it)",
    },
    Task.MULTILABEL: {
        "label_smoothing": "multilabel trains with label smoothing 0 (resolve refuses more)",
    },
}
# Azure's image_width and image_height fold into image_size (cli/finetune.py `_square_size`).
FOLDED = {"image_width": "image_size", "image_height": "image_size"}
_BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.(\w+)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)
_PARENT_INPUT = re.compile(r"\$\{\{\s*parent\.inputs\.(\w+)\s*\}\}")


def _spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((COMPONENTS / name / "spec.yaml").read_text(encoding="utf-8"))


def _feeds(spec: dict[str, Any]) -> dict[str, str]:
    """Component input → the FinetuneConfig field its flag sets."""
    options = {
        flag: param.name
        for param in finetune_command.params
        for flag in (*param.opts, *getattr(param, "secondary_opts", ()))
    }
    (call,) = parse_invocations(spec["command"])
    words = [word.text for word in call.rest]
    feeds = {}
    for flag, value in itertools.pairwise(words):
        match = _BINDING.fullmatch(value)
        if flag in options and match and match.group(1) == "inputs":
            feeds[match.group(2)] = FOLDED.get(options[flag], options[flag])
    return feeds


def _render(spec: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """The `deitkit` arguments Azure ML runs for the inputs `given`, defaults applied."""
    values = {name: decl.get("default") for name, decl in spec["inputs"].items()}
    values.update(given)

    def group(match: re.Match) -> str:
        names = [name for kind, name in _BINDING.findall(match.group(1)) if kind == "inputs"]
        return match.group(1) if all(values[name] is not None for name in names) else ""

    def value(match: re.Match) -> str:
        kind, name = match.groups()
        return str(values[name]) if kind == "inputs" else f"/outputs/{name}"

    (call,) = parse_invocations(_BINDING.sub(value, _OPTIONAL.sub(group, spec["command"])))
    return [word.text for word in call.rest]


def _config(args: list[str], monkeypatch) -> FinetuneConfig:
    """The FinetuneConfig `deitkit ARGS` trains with (training itself is cut off)."""
    import deitkit.training.run as run_module

    seen = []
    monkeypatch.setattr(run_module, "finetune", lambda config, **_: seen.append(config) or 1 / 0)
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, ZeroDivisionError), result.output
    return seen[0]


def _other_value(name: str, decl: dict[str, Any]) -> Any:
    """A value of the input that is not its default (nor, for a choice, its first value)."""
    kind, default, enum = decl["type"], decl.get("default"), decl.get("enum")
    if enum:
        return [v for v in enum if v != default][-1]
    if kind == "boolean":
        return not default
    if kind == "integer":
        return (default or 0) + 2
    if kind == "number":
        return round((default or 0) + 0.1, 6)
    if kind == "string":
        return "scratch:deit-tiny"
    return f"/inputs/{name}"  # mltable, mlflow_model, uri_file: a mounted path


def test_every_recipe_field_is_a_finetune_component_input():
    fields = {field.name for field in dataclasses.fields(FinetuneConfig)}
    assert set(NOT_INPUTS) <= fields  # each exception names a real field
    missing = fields - set(_feeds(_spec("finetune")).values()) - set(NOT_INPUTS)
    assert not missing, f"FinetuneConfig fields without a finetune component input: {missing}"


@pytest.mark.parametrize("task", list(Task))
def test_every_recipe_input_is_a_pipeline_input_of_the_same_name(task):
    pipeline = _spec(PIPELINES[task])
    step = pipeline["jobs"]["finetune"]
    assert step["component"] == "../finetune/spec.yaml"
    bound = step["inputs"]
    for name, field in _feeds(_spec("finetune")).items():
        if field in NOT_OFFERED[task]:
            assert name not in bound, f"{name}: {NOT_OFFERED[task][field]}"
            continue
        assert name in bound, f"the {PIPELINES[task]} finetune step does not set {name}"
        match = _PARENT_INPUT.fullmatch(str(bound[name]))
        if match is None:
            assert field in SET_BY_PIPELINE, f"{name} is set to {bound[name]!r}, not bound"
        else:
            assert match.group(1) == name and name in pipeline["inputs"]


def test_only_the_required_inputs_give_the_clis_defaults(monkeypatch):
    spec = _spec("finetune")
    args = _render(spec, {"training_data": "/inputs/train", "task_name": "image-classification"})
    assert "--image-width" not in args and "--max-steps" not in args  # no default: dropped
    expected = FinetuneConfig(
        model="facebook/deit-base-patch16-224",  # the component's model_name default
        train="/inputs/train",
        output="/outputs/pytorch_model_folder",
    )
    assert _config(args, monkeypatch) == expected


def test_every_optional_input_given_reaches_its_field(monkeypatch):
    spec = _spec("finetune")
    given = {name: _other_value(name, decl) for name, decl in spec["inputs"].items()}
    required = {"training_data": "/inputs/train", "task_name": "image-classification"}
    defaults = _config(_render(spec, required), monkeypatch)
    config = _config(_render(spec, given), monkeypatch)
    for name, field in _feeds(spec).items():
        assert getattr(config, field) != getattr(defaults, field), f"{name} did not reach {field}"
    assert config.model == "/inputs/mlflow_model"  # mlflow_model wins over model_name
    assert config.teacher == "/inputs/teacher_mlflow_model"  # wins over teacher_model
    distillation = (config.distillation, config.distillation_alpha, config.distillation_tau)
    assert distillation == ("soft", 0.6, 1.1)
    assert (config.rand_augment, config.class_weights, config.precision) == (True, "auto", "fp16")
    assert (config.max_steps, config.save_steps, config.validation_fraction) == (2, 2, 0.3)


def test_minus_one_sizes_reach_the_cli_as_minus_one(monkeypatch):
    spec = _spec("finetune")
    given = {"training_data": "/t", "task_name": "image-classification"}
    args = _render(spec, {**given, "image_width": -1, "image_height": -1})
    assert args[args.index("--image-width") + 1] == "-1"
    assert args[args.index("--image-height") + 1] == "-1"
    assert _config(args, monkeypatch).image_size == -1


def test_another_size_reaches_the_cli_as_that_size(monkeypatch):
    # Not the checkpoint's own: trained and served at it (tests/test_training_run.py).
    spec = _spec("finetune")
    given = {"training_data": "/t", "task_name": "image-classification"}
    args = _render(spec, {**given, "image_width": 384, "image_height": 384})
    assert _config(args, monkeypatch).image_size == 384
