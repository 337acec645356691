"""Which Azure ML workspace to talk to (flags or config.json), and the MLClient for it."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError

CONFIG_FILE = "config.json"
# The offline test hook: MODULE:FUNCTION of a factory `connect` calls instead of building an
# MLClient (the tests' mock workspace). Read only here, and announced on stderr when set.
CLIENT_FACTORY_ENV = "DEITKIT_AZURE_CLIENT_FACTORY"
# MLClient.from_config looks in these folders first, then beside them, walking up from cwd.
CONFIG_FOLDERS = (".azureml", "aml_config", "")
CONFIG_KEYS = {
    "subscription_id": "--subscription",
    "resource_group": "--resource-group",
    "workspace_name": "--workspace",
}
SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
# Template text users forget to replace: <SUBSCRIPTION_ID>, {{rg}}, ${WS}, your-workspace, xxxx.
PLACEHOLDER = re.compile(r"[<>{}$]|^your[-_ ]|^x{3,}$|^(todo|changeme|replace[-_ ]?me)$", re.I)
SCOPE = re.compile(
    r"^/subscriptions/(?P<subscription_id>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<workspace_name>[^/]+)/?$",
    re.I,
)


@dataclass(frozen=True)
class Workspace:
    """An Azure ML workspace address; `source` says where it came from (flags or a file)."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str = "flags"


def resolve_workspace(
    *,
    subscription: str | None = None,
    resource_group: str | None = None,
    workspace: str | None = None,
    config: str | Path | None = None,
    search_from: str | Path | None = None,
) -> Workspace:
    """The workspace from flags, a config.json, or both (flags win), checked for placeholders.

    Args:
        subscription: `--subscription`, the Azure subscription id (a GUID).
        resource_group: `--resource-group`.
        workspace: `--workspace`, the workspace name.
        config: An explicit config.json; default: the first one found the way
            `MLClient.from_config` finds it (`.azureml/config.json`, `config.json`, walking up).
        search_from: Where that search starts; default: the current folder.

    Raises:
        ConfigError: A value is missing, still a template placeholder, or not a subscription id.
    """
    values: dict[str, str] = {}
    source = "flags"
    path = Path(config) if config is not None else find_config(search_from)
    if path is not None:
        values = read_config(path)
        source = str(path)
    flags = {
        "subscription_id": subscription,
        "resource_group": resource_group,
        "workspace_name": workspace,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    values.update(given)
    missing = [CONFIG_KEYS[key] for key in CONFIG_KEYS if not values.get(key)]
    if missing:
        where = f"{source} lacks" if path is not None else "missing"
        raise ConfigError(
            f"no Azure ML workspace: {where} {', '.join(missing)}; pass --subscription, "
            "--resource-group and --workspace, or download config.json from the workspace's "
            "page in the Azure portal into this folder (or .azureml/)"
        )
    for key, value in values.items():
        origin = f"{CONFIG_KEYS[key]}" if key in given else f"{source}: {key}"
        if PLACEHOLDER.search(value):
            raise ConfigError(
                f"{origin} is a placeholder ({value!r}); replace it with your workspace's "
                f"{key.replace('_', ' ')}"
            )
    if not SUBSCRIPTION_ID.match(values["subscription_id"]):
        origin = "--subscription" if "subscription_id" in given else f"{source}: subscription_id"
        raise ConfigError(
            f"{origin} {values['subscription_id']!r} is not a subscription id "
            "(expected a GUID like 12345678-90ab-cdef-1234-567890abcdef)"
        )
    return Workspace(
        values["subscription_id"],
        values["resource_group"],
        values["workspace_name"],
        "flags" if len(given) == len(CONFIG_KEYS) else source,
    )


def find_config(start: str | Path | None = None) -> Path | None:
    """The nearest workspace config.json at or above `start`, as `MLClient.from_config` looks.

    A config.json without any workspace key (a Hugging Face model's, say) is passed over.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in CONFIG_FOLDERS:
        for directory in (start, *start.parents):
            candidate = directory / folder / CONFIG_FILE
            if candidate.is_file() and _is_workspace_config(candidate):
                return candidate
    return None


def read_config(path: str | Path) -> dict[str, str]:
    """subscription_id, resource_group and workspace_name from a workspace config.json.

    Both forms Azure writes are read: the three keys, or an ARM id under `Scope`.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the workspace config: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object with {', '.join(CONFIG_KEYS)}")
    values = {key: doc[key] for key in CONFIG_KEYS if key in doc}
    scope = doc.get("Scope")
    if scope is not None:
        match = SCOPE.match(str(scope))
        if match is None:
            raise ConfigError(
                f"{path}: Scope {scope!r} is not a workspace ARM id "
                "(/subscriptions/S/resourceGroups/G/providers/"
                "Microsoft.MachineLearningServices/workspaces/W)"
            )
        values = {**match.groupdict(), **values}
    for key, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key}: expected a string, got {value!r}")
    return values


def connect(workspace: Workspace, *, credential: Any = None) -> Any:
    """An `azure.ai.ml.MLClient` for `workspace`, signed in with `DefaultAzureCredential`.

    Nothing goes over the network here; the credential asks for a token on the first call.
    With `DEITKIT_AZURE_CLIENT_FACTORY=MODULE:FUNCTION` set, `FUNCTION(workspace)` makes the
    client instead (the offline test hook; see docs/azure.md).
    """
    factory = os.environ.get(CLIENT_FACTORY_ENV)
    if factory:
        return _client_from_factory(factory, workspace)
    try:
        from azure.ai.ml import MLClient
    except ImportError as err:
        raise ConfigError(
            f"deitkit azure needs azure-ai-ml ({err}); install deitkit[azure]"
        ) from None
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return MLClient(
        credential=credential,
        subscription_id=workspace.subscription_id,
        resource_group_name=workspace.resource_group,
        workspace_name=workspace.workspace_name,
    )


def _client_from_factory(spec: str, workspace: Workspace) -> Any:
    module, sep, name = spec.partition(":")
    try:
        if not (sep and module and name):
            raise ValueError("expected MODULE:FUNCTION")
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"{CLIENT_FACTORY_ENV}={spec!r}: {err}; unset it to talk to Azure ML"
        ) from None
    print(f"deitkit: Azure ML calls go to {spec} ({CLIENT_FACTORY_ENV})", file=sys.stderr)
    return factory(workspace)


def _is_workspace_config(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # unreadable: let read_config report it rather than skip it silently
    return isinstance(doc, dict) and (bool(CONFIG_KEYS.keys() & doc.keys()) or "Scope" in doc)
