"""Component YAMLs loaded with azure-ai-ml; `azureml:<name>` references found through assets.yaml.

A pipeline node names its component by a local file (`component: ../finetune/spec.yaml`, which
azure-ai-ml loads itself) or by a workspace reference (`azureml:<name>@latest`,
`azureml:<name>:<version>`), which azure-ai-ml keeps as the string `<name>@latest`. On Azure
the workspace resolves it; here the repository's manifest does: the component asset of that
name, at the version assets.yaml gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.assets.manifest import Manifest, load_manifest
from deitkit.assets.yaml_loading import quiet_azure
from deitkit.azure.entities import asset_folder, load_entity
from deitkit.errors import ConfigError

SPEC_FILE = "spec.yaml"
# `name@label` or `name:version`, the forms left once azure-ai-ml strips `azureml:`.
_WORKSPACE_REF = re.compile(
    r"^(?:azureml:)?(?P<name>[A-Za-z0-9_.-]+)(?:@(?P<label>[\w.-]+)|:(?P<version>[\w.+-]+))?$"
)


@dataclass(frozen=True)
class LoadedComponent:
    """A command or pipeline component and where it was read (`source`, for messages)."""

    entity: Any
    source: str

    @property
    def type(self) -> str:
        return self.entity.type


def load_spec(path: str | Path) -> LoadedComponent:
    """The component at `path` (command or pipeline), its steps' local files loaded too.

    Raises:
        ConfigError: the file is missing, is not a valid component, or is another entity.
    """
    from azure.ai.ml import load_component

    path = Path(path)
    with quiet_azure():
        entity = load_entity(load_component, path)
    if entity.type not in ("command", "pipeline"):
        raise ConfigError(
            f"{path}: a {entity.type} component; the local runner runs command and pipeline "
            "components"
        )
    return LoadedComponent(entity, str(path))


def node_component(
    node: Any, *, step: str, pipeline: str, manifest: Manifest | None
) -> LoadedComponent:
    """The component a pipeline node runs: loaded already, or a workspace reference resolved.

    Raises:
        ConfigError: a registry reference, a name assets.yaml does not index as a component,
            or a version other than the one it gives.
    """
    component = node.component
    if not isinstance(component, str):
        source = getattr(component, "_source_path", None) or f"{pipeline} (inline in step {step})"
        return LoadedComponent(component, str(source))
    where = f"{pipeline}: step {step}: component {component!r}"
    match = _WORKSPACE_REF.match(component)
    if component.startswith("azureml://") or not match:
        raise ConfigError(
            f"{where}: only local files and azureml:<name>@latest or azureml:<name>:<version> "
            "references to this repository's components (assets.yaml) run locally"
        )
    manifest = manifest or load_manifest()
    name, label, version = match["name"], match["label"], match["version"]
    entries = [a for a in manifest.assets if a.name == name and a.type == "component"]
    if not entries:
        known = ", ".join(a.name for a in manifest.of_type("component")) or "none"
        raise ConfigError(f"{where}: {manifest.path} indexes no component {name!r}; known: {known}")
    entry = entries[0]
    if label not in (None, "latest") or version not in (None, entry.version):
        raise ConfigError(
            f"{where}: {manifest.path} has {name} version {entry.version} only; refer to it "
            f"as azureml:{name}@latest or azureml:{name}:{entry.version}"
        )
    return load_spec(asset_folder(name, manifest) / SPEC_FILE)
