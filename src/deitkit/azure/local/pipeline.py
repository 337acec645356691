"""A component planned into the command jobs it runs, every input checked before any runs.

A command component is one step. A pipeline component's nodes become steps in dependency
order (YAML order among equals), each input bound as Azure ML binds it:
`${{parent.inputs.x}}` to the pipeline's value for `x` (its default when not given; an input
given nothing leaves the step's own default in force), `${{parent.jobs.s.outputs.y}}` to the
folder step `s` writes, and `${{parent.outputs.z}}` makes a step's output the pipeline's.
Nested pipeline nodes are planned into their own steps (`outer/inner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.azure.local.components import LoadedComponent, node_component
from deitkit.azure.local.expressions import Binding, whole_binding
from deitkit.azure.local.inputs import Binder, check_inputs
from deitkit.azure.local.job import OutputRef, Step, check_renders
from deitkit.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """The steps to run, in order, and the step output behind each of the component's outputs."""

    steps: list[Step]
    outputs: dict[str, OutputRef]


def plan(component: LoadedComponent, values: Mapping[str, Any], binder: Binder) -> Plan:
    """The steps of `component` with its checked `values` (see `check_inputs`)."""
    if component.type == "command":
        name = component.entity.name or Path(component.source).parent.name
        count = _distribution(component.entity, None, {}, component.source)
        _check_single_node(component.entity, None, {}, component.source)
        step = Step(name, component, dict(values), process_count=count)
        check_renders(step)
        return Plan([step], {out: OutputRef(name, out) for out in component.entity.outputs})
    return _plan_pipeline(component, values, binder, prefix="")


def _plan_pipeline(
    component: LoadedComponent, values: Mapping[str, Any], binder: Binder, *, prefix: str
) -> Plan:
    nodes = dict(component.entity.jobs)
    bindings = {name: _node_bindings(node, component.source, name) for name, node in nodes.items()}
    steps: list[Step] = []
    outputs: dict[str, OutputRef] = {}
    # What each node's outputs are, once planned: a step output (nested pipelines map theirs).
    produced: dict[str, dict[str, OutputRef]] = {}
    base = Path(component.source).parent
    for name in _order(bindings, component.source):
        node, step_name = nodes[name], prefix + name
        where = f"{component.source}: step {name}"
        if node.type not in ("command", "pipeline"):
            raise ConfigError(
                f"{where}: a {node.type} node; the local runner runs command and pipeline nodes"
            )
        inner = node_component(node, step=name, pipeline=component.source, manifest=binder.manifest)
        given: dict[str, Any] = {}
        for input_name, value in bindings[name].items():
            if isinstance(value, Binding):
                value = _bound(value, values, produced, where, input_name)
            elif hasattr(value, "path") and hasattr(value, "type"):  # an Input(type, path) literal
                value = value.path
            given[input_name] = value
        given = {k: v for k, v in given.items() if v is not None}
        checked = check_inputs(
            inner,
            given,
            binder,
            origin=f"{where}: input",
            base=base,
            hint="bind it in the step, or give the pipeline input it is bound to",
        )
        if node.type == "pipeline":
            sub = _plan_pipeline(inner, checked, binder, prefix=step_name + "/")
            steps.extend(sub.steps)
            produced[name] = sub.outputs
        else:
            count = _distribution(inner.entity, node, values, where)
            _check_single_node(inner.entity, node, values, where)
            env = {
                str(k): str(v)
                for k, v in (getattr(node, "environment_variables", None) or {}).items()
            }
            step = Step(step_name, inner, checked, process_count=count, environment_variables=env)
            check_renders(step)
            steps.append(step)
            produced[name] = {out: OutputRef(step_name, out) for out in inner.entity.outputs}
        for out_name, node_output in node.outputs.items():
            target = whole_binding(
                getattr(node_output, "_data", None), where=f"{where}: output {out_name}"
            )
            if target is None:
                continue
            if target.scope != "parent.outputs" or target.name not in component.entity.outputs:
                raise ConfigError(
                    f"{where}: output {out_name} is bound to {target}; expected "
                    f"${{{{parent.outputs.NAME}}}} for an output of {component.source}"
                )
            outputs[target.name] = produced[name][out_name]
    return Plan(steps, outputs)


def _node_bindings(node: Any, source: str, name: str) -> dict[str, Any]:
    """Each input the node sets: a Binding, or the literal as azure-ai-ml loaded it."""
    found = {}
    for input_name, node_input in node.inputs.items():
        data = getattr(node_input, "_data", None)
        if data is None:
            continue
        binding = whole_binding(data, where=f"{source}: step {name}: input {input_name}")
        found[input_name] = binding if binding is not None else data
    return found


def _bound(
    binding: Binding,
    values: Mapping[str, Any],
    produced: Mapping[str, Mapping[str, OutputRef]],
    where: str,
    input_name: str,
) -> Any:
    here = f"{where}: input {input_name}: {binding}"
    if binding.scope == "parent.inputs":
        if binding.name not in values:
            raise ConfigError(f"{here}: the pipeline has no input {binding.name!r}")
        return values[binding.name]
    if binding.scope == "parent.jobs":  # `_order` made sure the step exists and came first
        found = produced[str(binding.job)].get(binding.name)
        if found is None:
            raise ConfigError(f"{here}: step {binding.job} has no output {binding.name!r}")
        return found
    raise ConfigError(f"{here}: an input binds to parent.inputs or parent.jobs.STEP.outputs")


def _order(bindings: Mapping[str, Mapping[str, Any]], source: str) -> list[str]:
    """Node names so that each comes after the steps it reads from; YAML order otherwise."""
    needs = {
        name: {v.job for v in inputs.values() if isinstance(v, Binding) and v.job}
        for name, inputs in bindings.items()
    }
    for name, jobs in needs.items():
        unknown = sorted(jobs - set(needs))
        if unknown:
            raise ConfigError(f"{source}: step {name}: the pipeline has no step {unknown[0]!r}")
    order: list[str] = []
    while len(order) < len(needs):
        ready = [n for n in needs if n not in order and needs[n] <= set(order)]
        if not ready:
            stuck = sorted(set(needs) - set(order))
            raise ConfigError(f"{source}: steps {', '.join(stuck)} depend on each other in a cycle")
        order.append(ready[0])
    return order


def _setting(value: Any, values: Mapping[str, Any], where: str, what: str) -> int | None:
    """An integer setting of a node: a literal, or bound to a pipeline input."""
    binding = whole_binding(value, where=f"{where}: {what}")
    if binding is not None:
        if binding.scope != "parent.inputs" or binding.name not in values:
            raise ConfigError(f"{where}: {what} is bound to {binding}, which is no pipeline input")
        value = values[binding.name]
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {what} {value!r} is not an integer") from None
    if number < 1:
        raise ConfigError(f"{where}: {what} must be at least 1, got {number}")
    return number


def _distribution(entity: Any, node: Any, values: Mapping[str, Any], where: str) -> int | None:
    """Processes per node under a PyTorch distribution; None without one."""
    distribution = (node.distribution if node is not None else None) or entity.distribution
    if distribution is None:
        return None
    kind = getattr(distribution, "type", None)
    if kind != "pytorch":
        raise ConfigError(f"{where}: distribution type {kind!r} is not emulated; only pytorch is")
    count = getattr(distribution, "process_count_per_instance", None)
    # Azure starts one process per node when process_count_per_instance is not set.
    return _setting(count, values, where, "process_count_per_instance") or 1


def _check_single_node(entity: Any, node: Any, values: Mapping[str, Any], where: str) -> None:
    resources = [r for r in ((node.resources if node is not None else None), entity.resources) if r]
    for res in resources:
        count = _setting(getattr(res, "instance_count", None), values, where, "instance_count")
        if count is not None:
            if count > 1:
                raise ConfigError(
                    f"{where}: instance_count {count}: the local runner emulates one node; set "
                    "instance_count 1 (process_count_per_instance processes still start)"
                )
            return
