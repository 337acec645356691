"""A local stand-in for `azure.ai.ml.MLClient` that records every entity it is handed.

Environments and data assets behave as the service does (azure-ai-ml 1.35.2, research-11):

- `get(name, version=V)` raises ResourceNotFoundError for a missing version;
  `get(name, label="latest")` with no version raises ValidationException ("Asset NAME does
  not exist in workspace WS."), as do an unknown label, both, or neither.
- `create_or_update` uploads a local path (a copy lands in the mock's datastore folder under
  `LocalUpload/<azure-ai-ml's content hash>/<folder name>/`) and returns the entity as the
  service echoes it: a data asset's path becomes the long-form
  `azureml://subscriptions/.../datastores/workspaceblobstore/paths/...` URL with a trailing
  slash, an environment's build path the storage URL; a missing version is the next integer.
  A version is immutable: the same name and version with other content is refused.
- An mltable path is checked with azure-ai-ml's own MLTable reader; a uri_folder must be a
  folder, a uri_file a file.
- A job or deployment that names an environment or data asset version the workspace lacks
  is refused, as the service refuses it (an `@latest` label fails in azure-ai-ml first).

The offline test hook: `deitkit azure` run in a subprocess with
`DEITKIT_AZURE_CLIENT_FACTORY=azure_mock:client_from_environment` (this folder on
PYTHONPATH) and `DEITKIT_AZURE_MOCK_DIR=<folder>` talks to a MockMLClient whose versions,
uploads (`<folder>/datastore`) and calls (`<folder>/calls.jsonl`) last across processes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

SUBSCRIPTION = "12345678-90ab-cdef-1234-567890abcdef"
DATASTORE = "workspaceblobstore"
BLOB_URL = "https://mockworkspace.blob.core.windows.net/azureml-blobstore-mock/"
STATE_FILE = "state.json"
CALLS_FILE = "calls.jsonl"
# `[azureml:]NAME:VERSION` or `[azureml:]NAME@LABEL`, as references to workspace assets read.
_REFERENCE = re.compile(
    r"^(azureml:)?(?P<name>[A-Za-z0-9_.-]+)(:(?P<version>[^:/@]+)|@(?P<label>[\w.-]+))$"
)


@dataclass
class Call:
    """One call: which operations group, which method, a snapshot of the entity, the kwargs."""

    group: str
    method: str
    entity: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)


class _Poller:
    """What `begin_*` returns: `.result()` is the entity as Azure would echo it back."""

    def __init__(self, value: Any):
        self._value = value

    def result(self, timeout: float | None = None) -> Any:
        return self._value


class _Operations:
    """One operations group (`jobs`, `models`, ...) over a store of entities by name."""

    def __init__(self, client: MockMLClient, group: str):
        self._client = client
        self._group = group
        self.store: dict[str, Any] = {}

    def _record(self, method: str, entity: Any = None, **kwargs: Any) -> None:
        # Snapshots: the code under test mutates entities between calls (endpoint traffic).
        self._client._log(Call(self._group, method, _snapshot(entity), kwargs))

    def _stored(self, entity: Any) -> Any:
        entity = _snapshot(entity)
        if self._group == "models" and getattr(entity, "version", None) is None:
            entity.version = str(sum(1 for c in self._client.calls if c.group == "models"))
        if self._group == "jobs":
            # The submitted job as Azure reports it: a name and a studio page (read-only on Job).
            name = entity.name or f"job-{len(self._client.calls)}"
            return SimpleNamespace(name=name, studio_url=f"https://ml.azure.com/runs/{name}")
        if self._group == "online_endpoints":
            entity._scoring_uri = f"https://{entity.name}.example.inference.ml.azure.com/score"
        self.store[entity.name] = entity
        return entity

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        self._record("create_or_update", entity, **kwargs)
        self._client._check_references(entity)
        return self._stored(entity)

    def begin_create_or_update(self, entity: Any, **kwargs: Any) -> _Poller:
        self._record("begin_create_or_update", entity, **kwargs)
        self._client._check_references(entity)
        return _Poller(self._stored(entity))

    def get(self, name: str, **kwargs: Any) -> Any:
        self._record("get", None, name=name, **kwargs)
        if name not in self.store:
            raise ResourceNotFoundError(f"{self._group} {name!r} not found")
        return self.store[name]

    def invoke(self, endpoint_name: str, **kwargs: Any) -> Any:
        self._record("invoke", None, endpoint_name=endpoint_name, **kwargs)
        if self._group == "online_endpoints":
            return json.dumps([{"probs": [0.9, 0.1], "labels": ["can", "carton"]}])
        return SimpleNamespace(name="batch-job-1", studio_url="https://ml.azure.com/runs/b1")


class _VersionedOperations(_Operations):
    """`environments` and `data`: immutable versions per name, local paths uploaded."""

    def __init__(self, client: MockMLClient, group: str):
        super().__init__(client, group)
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        self._record("get", None, name=name, version=version, label=label)
        if version and label:
            raise _validation("Cannot specify both version and label.")
        if label:
            if label != "latest":
                raise _validation(
                    f"Asset {name} with version label {label} does not exist in workspace."
                )
            versions = self.versions.get(name)
            if not versions:
                workspace = self._client.workspace_name
                raise _validation(f"Asset {name} does not exist in workspace {workspace}.")
            return _entity(max(versions.values(), key=lambda v: v["created"]))
        if not version:
            raise _validation("Must provide either version or label.")
        found = self.versions.get(name, {}).get(str(version))
        if found is None:
            raise ResourceNotFoundError(
                f"(UserError) {self._kind} {name}:{version} not found in workspace "
                f"{self._client.workspace_name}"
            )
        return _entity(found)

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        self._record("create_or_update", entity, **kwargs)
        return self._create(entity)

    def begin_create_or_update(self, entity: Any, **kwargs: Any) -> _Poller:
        self._record("begin_create_or_update", entity, **kwargs)
        return _Poller(self._create(entity))

    @property
    def _kind(self) -> str:
        return "Environment" if self._group == "environments" else "Data"

    def _create(self, entity: Any) -> Any:
        entity = _snapshot(entity)
        name = entity.name
        versions = self.versions.setdefault(name, {})
        if self._group == "environments":
            uploaded, fingerprint = self._upload_build(entity)
        else:
            uploaded, fingerprint = self._upload_data(entity)
        version = entity.version
        if version is None:  # azure-ai-ml: the next version after the container's latest
            numbers = [int(v) for v in versions if v.isdigit()]
            version = str(max(numbers, default=0) + 1)
        version = str(version)
        existing = versions.get(version)
        if existing is not None and existing["fingerprint"] != fingerprint:
            raise ResourceExistsError(
                f"(UserError) {self._kind} {name}:{version} already exists with other content; "
                "versions are immutable, register a new version"
            )
        record = {
            "name": name,
            "version": version,
            "type": getattr(entity, "type", None),
            "path": uploaded,
            "local": self._client._local_copy(uploaded),
            "fingerprint": fingerprint,
            "created": existing["created"] if existing else self._client._next_created(),
        }
        versions[version] = record
        self._client._save()
        return self._echo(entity, record)

    def _echo(self, entity: Any, record: dict[str, Any]) -> Any:
        entity.version = record["version"]
        if self._group == "environments":
            if entity.build is not None:
                entity.build.path = record["path"]
        else:
            entity.path = record["path"]
        return entity

    def _upload_build(self, env: Any) -> tuple[str | None, str]:
        from azure.ai.ml.exceptions import ValidationException

        build = env.build
        if build is None or not build.path:
            return None, json.dumps({"image": env.image, "conda": str(env.conda_file)})
        if "://" in str(build.path):
            return str(build.path), str(build.path)
        path = Path(build.path)
        if not path.is_dir():
            raise ValidationException(
                message=f"Build context {path} is not a folder.",
                no_personal_data_message="Build context is not a folder.",
            )
        digest = self._client._upload(path)
        url = f"{BLOB_URL}LocalUpload/{digest}/{path.name}/"
        return url, json.dumps({"context": digest, "dockerfile": build.dockerfile_path})

    def _upload_data(self, data: Any) -> tuple[str, str]:
        from azure.ai.ml.constants import AssetTypes

        path = str(data.path)
        if re.match(r"^[a-z][a-z0-9+.-]+://", path):
            return path, path
        local = Path(path)
        if data.type == AssetTypes.MLTABLE:
            _check_mltable(local)
        elif not (local.is_dir() if data.type == AssetTypes.URI_FOLDER else local.is_file()):
            raise _validation(f"File path does not match asset type {data.type}: {local}")
        digest = self._client._upload(local)
        suffix = "/" if local.is_dir() else ""
        ws = self._client
        url = (
            f"azureml://subscriptions/{ws.subscription_id}/resourcegroups/"
            f"{ws.resource_group_name}/workspaces/{ws.workspace_name}/datastores/{DATASTORE}/"
            f"paths/LocalUpload/{digest}/{local.name}{suffix}"
        )
        return url, digest


class MockMLClient:
    """Records calls in `calls`; `compute.store` may be pre-filled with existing clusters.

    Args:
        state_dir: Where versions, uploads and calls persist (for subprocesses); default: a
            temporary datastore, nothing kept.
        existing_computes: Clusters the workspace already has, by name.
    """

    GROUPS = (
        "jobs",
        "models",
        "compute",
        "online_endpoints",
        "online_deployments",
        "batch_endpoints",
        "batch_deployments",
    )
    VERSIONED = ("environments", "data")

    def __init__(self, *, state_dir: str | Path | None = None, **existing_computes: Any):
        self.subscription_id = SUBSCRIPTION
        self.resource_group_name = "rg"
        self.workspace_name = "ws"
        self.calls: list[Call] = []
        for group in self.GROUPS:
            setattr(self, group, _Operations(self, group))
        for group in self.VERSIONED:
            setattr(self, group, _VersionedOperations(self, group))
        self.compute.store.update(existing_computes)
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="azure-mock-")
            self.state_dir = None
            self.datastore = Path(self._tmp.name)
        else:
            self.state_dir = Path(state_dir)
            self.datastore = self.state_dir / "datastore"
            self._load()

    def writes(self) -> list[Call]:
        """The calls that would change something in the workspace (no get/invoke)."""
        return [c for c in self.calls if "create" in c.method]

    def of(self, group: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.group == group and method in (None, c.method)]

    def uploaded(self, group: str, name: str, version: str) -> Path:
        """The local copy of what `name:version` uploaded (a folder or a file)."""
        return Path(getattr(self, group).versions[name][str(version)]["local"])

    # --- what the service does with references and uploads --------------------------------

    def _check_references(self, entity: Any) -> None:
        """Refuse a job or deployment naming an environment or data version not registered."""
        for reference in _environment_references(entity):
            self._require("environments", reference)
        for reference in _data_references(entity):
            self._require("data", reference)

    def _require(self, group: str, reference: str) -> None:
        match = _REFERENCE.match(reference)
        if match is None:
            return  # a registry id or an ARM id: not this workspace's to check
        operations: _VersionedOperations = getattr(self, group)
        if match["label"]:
            operations.get(match["name"], label=match["label"])  # azure-ai-ml resolves it first
            return
        if match["version"] not in operations.versions.get(match["name"], {}):
            raise HttpResponseError(
                f"(UserError) Could not find asset with ID: azureml://subscriptions/"
                f"{self.subscription_id}/resourceGroups/{self.resource_group_name}/workspaces/"
                f"{self.workspace_name}/{group}/{match['name']}/versions/{match['version']}"
            )

    def _upload(self, path: Path) -> str:
        """Copy `path` to `LocalUpload/<hash>/<name>` as azure-ai-ml names it; the hash."""
        from azure.ai.ml._utils._asset_utils import get_ignore_file, get_object_hash

        ignore = get_ignore_file(path) if path.is_dir() else None
        digest = get_object_hash(path, ignore) if ignore is not None else get_object_hash(path)
        dest = self.datastore / "LocalUpload" / digest / path.name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, dest)
            else:
                shutil.copy2(path, dest)
        return digest

    def _local_copy(self, url: str | None) -> str | None:
        match = re.search(r"/LocalUpload/([^/]+)/([^/]+)/?$", url or "")
        return str(self.datastore / "LocalUpload" / match[1] / match[2]) if match else None

    def _next_created(self) -> int:
        return 1 + max(
            (
                v["created"]
                for group in self.VERSIONED
                for versions in getattr(self, group).versions.values()
                for v in versions.values()
            ),
            default=0,
        )

    # --- persistence across processes -------------------------------------------------------

    def _log(self, call: Call) -> None:
        self.calls.append(call)
        if self.state_dir is None:
            return
        record = {
            "group": call.group,
            "method": call.method,
            "entity": _document(call.entity),
            "kwargs": {k: str(v) for k, v in call.kwargs.items()},
        }
        with (self.state_dir / CALLS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _save(self) -> None:
        if self.state_dir is None:
            return
        state = {group: getattr(self, group).versions for group in self.VERSIONED}
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")

    def _load(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / STATE_FILE
        if path.is_file():
            state = json.loads(path.read_text(encoding="utf-8"))
            for group in self.VERSIONED:
                getattr(self, group).versions.update(state.get(group, {}))


def client_from_environment(workspace: Any) -> MockMLClient:
    """The offline test hook's factory: a MockMLClient kept in `$DEITKIT_AZURE_MOCK_DIR`."""
    folder = os.environ.get("DEITKIT_AZURE_MOCK_DIR")
    if not folder:
        raise RuntimeError("DEITKIT_AZURE_MOCK_DIR must name the mock workspace's folder")
    client = MockMLClient(state_dir=folder)
    client.subscription_id = workspace.subscription_id
    client.resource_group_name = workspace.resource_group
    client.workspace_name = workspace.workspace_name
    return client


def read_calls(state_dir: str | Path) -> list[dict[str, Any]]:
    """The calls a subprocess-run mock recorded, in order (group, method, entity, kwargs)."""
    path = Path(state_dir) / CALLS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_versions(state_dir: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{group: {name: {version: record}}} of a subprocess-run mock's environments and data."""
    path = Path(state_dir) / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _environment_references(entity: Any) -> list[str]:
    """The environment references of a deployment, or of every component a job runs."""
    found = []
    environment = getattr(entity, "environment", None)
    if isinstance(environment, str):
        found.append(environment)
    for node in (getattr(entity, "jobs", None) or {}).values():
        found += _environment_references(getattr(node, "component", None))
    component = getattr(entity, "component", None)
    if component is not None and not isinstance(component, str):
        found += _environment_references(component)
    return found


def _data_references(entity: Any) -> list[str]:
    """`[azureml:]NAME:VERSION` paths among a job's (and its nodes') data inputs."""
    found = []
    for value in (getattr(entity, "inputs", None) or {}).values():
        value = getattr(value, "_data", value)
        path = getattr(value, "path", None)
        if isinstance(path, str) and _REFERENCE.match(path) and not Path(path).exists():
            found.append(path)
    for node in (getattr(entity, "jobs", None) or {}).values():
        found += _data_references(node)
    return found


def _check_mltable(folder: Path) -> None:
    """azure-ai-ml's own local MLTable check (`DataOperations._validate`, schema aside)."""
    from azure.ai.ml._utils._data_utils import read_local_mltable_metadata_contents
    from azure.ai.ml.entities._data.mltable_metadata import MLTableMetadata

    contents = read_local_mltable_metadata_contents(path=str(folder))
    MLTableMetadata._load(contents, folder / "MLTable")


def _validation(message: str) -> Exception:
    from azure.ai.ml.exceptions import ValidationException

    return ValidationException(message=message, no_personal_data_message=message)


def _entity(record: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(**{k: v for k, v in record.items() if k != "fingerprint"})


def _document(entity: Any) -> Any:
    if entity is None:
        return None
    to_dict = getattr(entity, "_to_dict", None)
    try:
        value = to_dict() if to_dict is not None else vars(entity)
        return json.loads(json.dumps(value, default=str))
    except Exception:  # an entity azure-ai-ml cannot serialise still leaves a trace
        return repr(entity)


def _snapshot(entity: Any) -> Any:
    try:
        return copy.deepcopy(entity)
    except KeyError:  # PipelineJob's attribute dicts refuse deepcopy; jobs are not mutated later
        return entity
