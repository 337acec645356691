"""Endpoint assets: the endpoint and deployment YAMLs, the loader for each, what they point at."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deitkit.assets.yaml_loading import Problems, load_entity, read_yaml

# `$schema` file name → the azure-ai-ml loader kind (yaml_loading.LOADERS) that reads it.
SCHEMAS = {
    "managedOnlineEndpoint": "online_endpoint",
    "managedOnlineDeployment": "online_deployment",
    "batchEndpoint": "batch_endpoint",
    "modelBatchDeployment": "batch_deployment",
    "batchDeployment": "batch_deployment",
}
# A batch deployment names a cluster, not a VM size; this tag records the cluster's size.
COMPUTE_SIZE_TAG = "compute_size"


def load_by_schema(path: Path, problems: Problems, role: str) -> dict[str, Any] | None:
    """The YAML at `path`, loaded with the loader its `$schema` names; `role` is endpoint or
    deployment. None (with the reason in `problems`) when unreadable or of another kind."""
    doc = read_yaml(path, problems)
    if doc is None:
        return None
    schema = str(doc.get("$schema", "")).rsplit("/", 1)[-1].removesuffix(".schema.json")
    kind = SCHEMAS.get(schema)
    if kind is None or not kind.endswith(role):
        allowed = ", ".join(s for s, k in SCHEMAS.items() if k.endswith(role))
        problems.add("$schema", f"{doc.get('$schema')!r}: expected one of {allowed}")
        return None
    load_entity(kind, path, problems)
    return doc


def check_deployment(
    endpoint: dict[str, Any],
    deployment: dict[str, Any],
    path: Path,
    problems: Problems,
    *,
    check_environment: Callable[[Any, str, Problems], None],
    check_size: Callable[[Problems, str, str], None],
) -> None:
    """A deployment belongs to its endpoint, runs an indexed environment and an existing
    scoring script, and names its VM size (`instance_type`, or the batch cluster's size in
    `tags.compute_size`), which `check_size` holds to the inference allow-lists."""
    if deployment.get("endpoint_name") != endpoint.get("name"):
        problems.add(
            "endpoint_name",
            f"{deployment.get('endpoint_name')!r}, but the endpoint is {endpoint.get('name')!r}",
        )
    check_environment(deployment.get("environment"), "environment", problems)
    code = deployment.get("code_configuration") or {}
    folder = path.parent / str(code.get("code", "."))
    script = str(code.get("scoring_script") or "")
    if not script or not (folder / script).is_file():
        problems.add("code_configuration", f"no scoring script {script!r} in {folder}")
    if "instance_type" in deployment:
        size, field = deployment["instance_type"], "instance_type"
    else:
        size = (deployment.get("tags") or {}).get(COMPUTE_SIZE_TAG)
        field = f"tags.{COMPUTE_SIZE_TAG}"
    if isinstance(size, str):
        check_size(problems, field, size)
    else:
        problems.add(field, "missing: the VM size the deployment runs on")
