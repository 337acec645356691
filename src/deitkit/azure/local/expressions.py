"""Azure ML's data-binding expressions, `${{inputs.x}}` to `${{parent.jobs.step.outputs.y}}`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from deitkit.errors import ConfigError

# The pattern azure-ai-ml validates bindings with (`_utils/utils.py`,
# get_all_data_binding_expressions): whatever sits between `${{` and `}}`, spaces trimmed.
EXPRESSION = re.compile(r"\$\{\{\s*(\S*?)\s*\}\}")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FORMS = {
    "inputs": re.compile(rf"^inputs\.({_NAME})$"),
    "outputs": re.compile(rf"^outputs\.({_NAME})$"),
    "parent.inputs": re.compile(rf"^parent\.inputs\.({_NAME})$"),
    "parent.outputs": re.compile(rf"^parent\.outputs\.({_NAME})$"),
    "parent.jobs": re.compile(rf"^parent\.jobs\.({_NAME})\.outputs\.({_NAME})$"),
}


@dataclass(frozen=True)
class Binding:
    """One expression: `scope` is a key of `_FORMS`; `job` is set for `parent.jobs.<job>...`."""

    scope: str
    name: str
    job: str | None = None

    def __str__(self) -> str:
        middle = f"jobs.{self.job}.outputs" if self.job else self.scope.removeprefix("parent.")
        prefix = "parent." if self.scope.startswith("parent") else ""
        return "${{" + f"{prefix}{middle}.{self.name}" + "}}"


def parse_expression(text: str) -> Binding | None:
    """The binding `text` (the inside of `${{...}}`) names, or None for any other expression."""
    for scope, pattern in _FORMS.items():
        match = pattern.match(text)
        if match:
            if scope == "parent.jobs":
                return Binding(scope, match[2], job=match[1])
            return Binding(scope, match[1])
    return None


def whole_binding(value: object, *, where: str) -> Binding | None:
    """The binding when `value` is exactly one `${{...}}` expression; None for a literal.

    Raises:
        ConfigError: `value` mixes an expression with other text, or names no binding the
            local runner knows (sweep search spaces, `parent.jobs.x.inputs`, ...).
    """
    if not isinstance(value, str) or "${{" not in value:
        return None
    match = EXPRESSION.fullmatch(value.strip())
    binding = parse_expression(match[1]) if match else None
    if binding is None:
        raise ConfigError(
            f"{where}: {value!r} is not a binding the local runner supports; expected one "
            "${{parent.inputs.NAME}}, ${{parent.outputs.NAME}} or "
            "${{parent.jobs.STEP.outputs.NAME}} as the whole value"
        )
    return binding
