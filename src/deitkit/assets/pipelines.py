"""Pipeline components: every binding names a real input, output or step, of a fitting type.

azure-ai-ml checks a pipeline's required inputs locally but leaves `${{parent...}}` references,
unknown step inputs and type mismatches to the service; these checks catch them before upload.
A pipeline input's default must also be that of the step input it feeds, where both have one,
so that a default is stated once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from deitkit.assets.yaml_loading import Problems

_REFERENCE = re.compile(
    r"\$\{\{\s*parent\.(?:(inputs|outputs)|jobs\.(\w+)\.(outputs))\.(\w+)\s*\}\}"
)
_PRIMITIVES = {"integer": int, "number": (int, float), "boolean": bool, "string": str}

ResolveComponent = Callable[[str], Mapping[str, Any] | None]
CheckSize = Callable[[str, str, str], None]  # (field, VM size, component name)


def check_pipeline(
    spec: Mapping[str, Any],
    problems: Problems,
    *,
    resolve: ResolveComponent,
    check_size: CheckSize,
) -> int:
    """Check a pipeline component's steps against the components they run; return the steps.

    Args:
        spec: The pipeline component's YAML.
        problems: Where each problem goes, as `FILE: jobs.STEP.FIELD: why`.
        resolve: A step's `component:` reference → that component's YAML, or None when the
            reference is not one of the repository's components.
        check_size: Called with each step's VM size (`resources.instance_type`, or the default
            of the pipeline input it is bound to) and the component the step runs.
    """
    inputs = spec.get("inputs") or {}
    outputs = spec.get("outputs") or {}
    jobs = spec.get("jobs") or {}
    steps: dict[str, Mapping[str, Any]] = {}
    for name, node in jobs.items():
        ref = node.get("component") if isinstance(node, dict) else None
        child = resolve(ref) if isinstance(ref, str) else None
        if child is None:
            problems.add(
                f"jobs.{name}.component",
                f"{ref!r} is none of the indexed components (use the relative path of its "
                "spec.yaml or azureml:NAME:VERSION)",
            )
        else:
            steps[name] = child
    for name, child in steps.items():
        node, where = jobs[name], f"jobs.{name}"
        for field, text in _strings(node, where):
            _check_reference(field, text, inputs, outputs, steps, problems)
        _check_inputs(node, where, child, inputs, steps, problems)
        _check_outputs(node, where, child, outputs, problems)
        _check_step_size(node, where, child, inputs, check_size)
    return len(steps)


def _strings(value: Any, field: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _strings(inner, f"{field}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _strings(inner, f"{field}[{i}]")
    elif isinstance(value, str):
        yield field, value


def _check_reference(field, text, inputs, outputs, steps, problems: Problems) -> None:
    for kind, step, _, name in _REFERENCE.findall(text):
        if kind == "inputs" and name not in inputs:
            problems.add(
                field, f"${{{{parent.inputs.{name}}}}}: the pipeline has no input {name!r}"
            )
        elif kind == "outputs" and name not in outputs:
            problems.add(
                field, f"${{{{parent.outputs.{name}}}}}: the pipeline has no output {name!r}"
            )
        elif step and step not in steps:
            problems.add(field, f"parent.jobs.{step}: the pipeline has no step {step!r}")
        elif step and name not in (steps[step].get("outputs") or {}):
            problems.add(
                field, f"parent.jobs.{step}.outputs.{name}: step {step!r} has no such output"
            )


def _whole(value: Any) -> re.Match | None:
    return _REFERENCE.fullmatch(value.strip()) if isinstance(value, str) else None


def _type(spec: Any) -> str:
    return str(spec.get("type", "string")) if isinstance(spec, dict) else "string"


def _check_inputs(node, where, child, inputs, steps, problems: Problems) -> None:
    declared = child.get("inputs") or {}
    for name, value in (node.get("inputs") or {}).items():
        field = f"{where}.inputs.{name}"
        target = declared.get(name)
        if not isinstance(target, dict):
            known = ", ".join(sorted(declared))
            problems.add(field, f"{child.get('name')} has no input {name!r}; its inputs: {known}")
            continue
        match = _whole(value)
        if match and match.group(1) == "inputs" and isinstance(inputs.get(match.group(4)), dict):
            _check_feed(field, match.group(4), inputs[match.group(4)], target, problems)
        elif match and match.group(2) in steps:
            source = (steps[match.group(2)].get("outputs") or {}).get(match.group(4))
            if isinstance(source, dict) and _type(source) not in (_type(target), "uri_folder"):
                problems.add(field, f"a {_type(source)} output cannot feed a {_type(target)} input")
        elif not match and not (isinstance(value, str) and "${{" in value):
            _check_literal(field, value, target, problems)


def _check_feed(field, source_name, source, target, problems: Problems) -> None:
    """A pipeline input bound to a step input: same type (or integer into number), enum within,
    and the step input's own default, where both have one."""
    kinds = (_type(source), _type(target))
    if kinds[0] != kinds[1] and kinds != ("integer", "number"):
        problems.add(field, f"pipeline input {source_name!r} ({kinds[0]}) feeds a {kinds[1]} input")
    enum = target.get("enum")
    if enum:
        offered = source.get("enum") or ([source["default"]] if "default" in source else [])
        if not source.get("enum"):
            problems.add(field, f"pipeline input {source_name!r} feeds a choice: give it an enum")
        extra = [v for v in offered if str(v) not in {str(e) for e in enum}]
        if extra:
            problems.add(field, f"pipeline input {source_name!r} offers {extra}, not in {enum}")
    mine, theirs = source.get("default"), target.get("default")
    if mine is not None and theirs is not None and not _same_value(kinds[1], mine, theirs):
        problems.add(
            f"inputs.{source_name}.default",
            f"{mine!r}, but it feeds {field}, whose component defaults to {theirs!r}",
        )
    required = not target.get("optional", False) and target.get("default") is None
    if required and source.get("optional", False) and source.get("default") is None:
        problems.add(
            field,
            f"the step needs this input, but pipeline input {source_name!r} is optional "
            "without a default",
        )


def _same_value(kind: str, a: Any, b: Any) -> bool:
    """Whether two defaults of an input of type `kind` are one value as Azure ML passes it on.

    A value of the wrong type (which the declaration checks report) compares as written.
    """
    try:
        if kind == "boolean":
            return str(a).lower() == str(b).lower()
        if kind in ("integer", "number"):
            return float(a) == float(b)
    except (TypeError, ValueError):
        pass
    return str(a) == str(b)


def _check_literal(field, value, target, problems: Problems) -> None:
    enum = target.get("enum")
    if enum and str(value) not in {str(e) for e in enum}:
        problems.add(field, f"{value!r} is not one of {enum}")
    expected = _PRIMITIVES.get(_type(target))
    if expected and (
        not isinstance(value, expected) or (isinstance(value, bool) and _type(target) != "boolean")
    ):
        article = "an" if _type(target) == "integer" else "a"
        problems.add(field, f"{value!r} is not {article} {_type(target)}")


def _check_outputs(node, where, child, outputs, problems: Problems) -> None:
    declared = child.get("outputs") or {}
    for name, value in (node.get("outputs") or {}).items():
        field = f"{where}.outputs.{name}"
        if name not in declared:
            problems.add(field, f"{child.get('name')} has no output {name!r}")
            continue
        match = _whole(value)
        if match and match.group(1) == "outputs" and isinstance(outputs.get(match.group(4)), dict):
            mine, theirs = _type(declared[name]), _type(outputs[match.group(4)])
            if mine != theirs:
                problems.add(field, f"a {mine} output bound to pipeline output of type {theirs}")


def _check_step_size(node, where, child, inputs, check_size: CheckSize) -> None:
    size = (node.get("resources") or {}).get("instance_type")
    if not isinstance(size, str):
        return
    match = _whole(size)
    if match and match.group(1) == "inputs":
        source = inputs.get(match.group(4))
        if isinstance(source, dict) and source.get("default") is not None:
            field = f"inputs.{match.group(4)}.default"
            check_size(field, str(source["default"]), str(child.get("name", "")))
    elif not match:
        check_size(f"{where}.resources.instance_type", size, str(child.get("name", "")))
