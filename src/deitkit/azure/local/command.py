"""A command component's `command:` rendered as Azure ML renders it before the job starts.

azure-ai-ml only validates commands; the service substitutes them (research-11 section 1):
each `$[[...]]` group is dropped when an input it uses has no value, and kept (brackets
removed) otherwise; `${{inputs.x}}` becomes the input's value as the SDK sends it, `str(value)`
(so booleans read `True`/`False`), or the path where a data input is mounted; `${{outputs.y}}`
becomes the output's folder. Nothing is quoted: Azure's mount paths hold no spaces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deitkit.azure.local.expressions import EXPRESSION, parse_expression
from deitkit.errors import ConfigError

# Azure ML does not nest optional groups; `]]` ends the group that `$[[` opened.
_GROUP = re.compile(r"\$\[\[(.*?)\]\]", re.S)


def render_value(value: Any) -> str:
    """A literal input value as the SDK sends it (`LiteralJobInput(value=str(value))`)."""
    return str(value)


def render_command(
    command: str,
    inputs: Mapping[str, str | None],
    outputs: Mapping[str, str],
    *,
    where: str,
) -> str:
    """Substitute `command` for one job.

    Args:
        command: The component's `command:` as written.
        inputs: Every declared input: its rendered value, or None when it has none (not
            given and no default).
        outputs: Every declared output: the folder (or file) path it is written to.
        where: The component, for errors.

    Raises:
        ConfigError: an expression names an undeclared input or output or another kind of
            binding, or an input without a value is used outside `$[[...]]`.
    """

    def keep_group(match: re.Match[str]) -> str:
        body = match[1]
        used = [_input_name(m[1], inputs, outputs, where) for m in EXPRESSION.finditer(body)]
        return "" if any(name and inputs[name] is None for name in used) else body

    def substitute(match: re.Match[str]) -> str:
        binding = parse_expression(match[1])
        name = _input_name(match[1], inputs, outputs, where)
        if name is not None:
            value = inputs[name]
            if value is None:
                raise ConfigError(
                    f"{where}: input {name!r} has no value but the command uses it outside "
                    "$[[...]]; give it a value (or make it optional inside $[[...]])"
                )
            return value
        assert binding is not None  # _input_name refused everything else
        return outputs[binding.name]

    return EXPRESSION.sub(substitute, _GROUP.sub(keep_group, command))


def _input_name(
    text: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any], where: str
) -> str | None:
    """The input `${{text}}` names; None for a declared output; ConfigError for anything else."""
    binding = parse_expression(text)
    if binding is not None and binding.scope == "inputs" and binding.name in inputs:
        return binding.name
    if binding is not None and binding.scope == "outputs" and binding.name in outputs:
        return None
    raise ConfigError(
        f"{where}: the command uses ${{{{{text}}}}}, which is no input or output of the "
        f"component (inputs: {', '.join(inputs) or 'none'}; "
        f"outputs: {', '.join(outputs) or 'none'})"
    )
