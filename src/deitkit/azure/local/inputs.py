"""A component's input values checked against its declarations before anything runs.

Values come from `--set` (strings), from a pipeline step's `inputs:` (YAML literals and
bindings) or from the library (Python values). Data values are resolved to local paths here
(`mounts.resolve_path`), primitives parsed and checked (`values.check_value`), defaults
applied, and a required input left without a value refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.assets.manifest import Manifest
from deitkit.azure.local.components import LoadedComponent
from deitkit.azure.local.job import OutputRef
from deitkit.azure.local.mounts import resolve_path
from deitkit.azure.local.values import (
    DATA_TYPES,
    check_names,
    check_value,
    describe,
    is_required,
    with_defaults,
)
from deitkit.errors import ConfigError


@dataclass(frozen=True)
class Binder:
    """How values in one component resolve: local data paths, the datastore, the manifest."""

    datastore: Path | None
    manifest: Manifest | None


def check_inputs(
    component: LoadedComponent,
    given: Mapping[str, Any],
    binder: Binder,
    *,
    origin: str,
    base: Path,
    hint: str,
) -> dict[str, Any]:
    """The component's inputs: `given` parsed and checked, defaults applied, required ones there.

    Args:
        component: The component whose inputs these are.
        given: Name to value (strings from `--set`, YAML literals, Paths, OutputRefs).
        binder: Where data paths resolve.
        origin: How values are named in messages (`--set`, `step finetune: input`).
        base: What relative data paths are relative to.
        hint: How to give a missing required input (`{name}` is replaced by its name).

    Raises:
        ConfigError: an unknown input, a value of the wrong type, a missing data path, or a
            required input without a value; nothing has run yet.
    """
    declared = dict(component.entity.inputs)
    check_names(declared, given, origin=origin, where=component.source)
    values: dict[str, Any] = {}
    for name, value in given.items():
        decl, where = declared[name], f"{origin} {name}"
        if value is None or isinstance(value, OutputRef):
            values[name] = value
        elif decl.type in DATA_TYPES:
            values[name] = resolve_path(
                value, decl.type, datastore=binder.datastore, base=base, origin=where
            )
        else:
            values[name] = check_value(name, decl, value, origin=where)
    values = with_defaults(declared, values)
    for name, decl in declared.items():
        if values[name] is None and is_required(decl):
            raise ConfigError(
                f"{origin} {name}: input {name!r} of {component.source} is required "
                f"({describe(decl)}) and has no value; {hint.format(name=name)}"
            )
    return values
