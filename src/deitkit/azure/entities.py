"""azure-ai-ml entities from the repository's endpoint YAMLs, with the CLI's flags laid over."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from deitkit.assets.manifest import ENDPOINT_NAME, MODEL_NAME, Manifest, load_manifest
from deitkit.errors import ConfigError

ONLINE_ASSET = "deitkit-image-online"
BATCH_ASSET = "deitkit-image-batch"
ENDPOINT_FILE = "endpoint.yml"
DEPLOYMENT_FILE = "deployment.yml"
MLMODEL_FILE = "MLmodel"
# A batch deployment names a cluster, not a VM size; this tag on it records the cluster's size.
COMPUTE_SIZE_TAG = "compute_size"
# Batch clusters scale to zero when idle, so an idle endpoint costs nothing (the samples' 0-3).
BATCH_MAX_INSTANCES = 3
IDLE_SECONDS_BEFORE_SCALE_DOWN = 120
MODEL_REFERENCE = re.compile(
    r"^azureml:[A-Za-z][A-Za-z0-9_.-]*(:[0-9A-Za-z_.-]+|@latest)$"
    r"|^azureml://registries/[^/]+/models/[^/]+/(versions/[^/]+|labels/latest)$"
)
DEPLOYMENT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{2,31}$")  # Azure ML's deployment naming rule


def asset_folder(asset: str, manifest: Manifest | None = None) -> Path:
    """The folder of the asset called `asset` in the manifest's index (the repository's default)."""
    manifest = manifest or load_manifest()
    for entry in manifest.assets:
        if entry.name == asset:
            folder = manifest.path.parent / entry.path
            if not folder.is_dir():
                raise ConfigError(f"{manifest.path}: asset {asset!r}: folder {folder} is missing")
            return folder
    known = ", ".join(a.name for a in manifest.assets) or "none"
    raise ConfigError(f"{manifest.path}: no asset named {asset!r} in the index; known: {known}")


def load_entity(loader: Callable[..., Any], path: Path) -> Any:
    """`loader(path)` (an azure-ai-ml `load_*`), its errors as ConfigError naming the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (the asset's Azure ML entity YAML)")
    try:
        return loader(source=path)
    except Exception as err:  # marshmallow and azure-ai-ml raise several unrelated types
        raise ConfigError(f"{path}: not a valid Azure ML entity: {describe_error(err)}") from None


def describe_error(err: Exception) -> str:
    """An azure-ai-ml validation error as `field: why; ...`, without its advice on editors."""
    from deitkit.assets.yaml_loading import error_fields

    return "; ".join(f"{field}: {why}" if field else why for field, why in error_fields(err))


def check_endpoint_name(name: str) -> str:
    """`name` when Azure ML accepts it as an endpoint name; ConfigError otherwise."""
    if not ENDPOINT_NAME.match(name):
        raise ConfigError(
            f"endpoint name {name!r} is not allowed: 3-32 letters, digits and '-', "
            "starting with a letter"
        )
    return name


def model_reference(text: str) -> Any:
    """A deployment's model: an `azureml:` reference as given, or a local MLflow model folder.

    Raises:
        ConfigError: `text` is neither (the message shows the accepted forms).
    """
    if MODEL_REFERENCE.match(text):
        return text
    path = Path(text)
    if path.is_dir():
        return mlflow_model(path)
    raise ConfigError(
        f"--model {text!r}: expected azureml:NAME:VERSION, azureml:NAME@latest, "
        "azureml://registries/REGISTRY/models/NAME/versions/VERSION, or a local MLflow model "
        "folder (deitkit package writes one)"
    )


def mlflow_model(
    path: str | Path,
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> Any:
    """An `mlflow_model` Model for a packaged model folder; the task tag comes from its MLmodel."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    path = Path(path)
    mlmodel = path / MLMODEL_FILE
    if not mlmodel.is_file():
        raise ConfigError(
            f"{path}: not an MLflow model folder (no {MLMODEL_FILE}); package a checkpoint "
            "with `deitkit package` first"
        )
    if name is not None and not MODEL_NAME.match(name):
        raise ConfigError(
            f"model name {name!r} is not allowed: letters, digits, '_', '.', '-', "
            "starting with a letter, at most 255 characters"
        )
    task = (_read_yaml(mlmodel).get("metadata") or {}).get("task")
    tags = {**({"task": task} if task else {}), **(tags or {})}
    return Model(
        path=str(path.resolve()),
        type=AssetTypes.MLFLOW_MODEL,
        name=name,
        version=version,
        description=description,
        tags=tags,
    )


def online_endpoint(folder: Path, *, name: str) -> Any:
    """The ManagedOnlineEndpoint of `folder`/endpoint.yml, renamed `name`."""
    from azure.ai.ml import load_online_endpoint

    endpoint = load_entity(load_online_endpoint, folder / ENDPOINT_FILE)
    endpoint.name = check_endpoint_name(name)
    return endpoint


def online_deployment(
    folder: Path,
    *,
    endpoint: str,
    model: Any,
    name: str | None = None,
    instance_type: str | None = None,
    instance_count: int | None = None,
) -> Any:
    """The ManagedOnlineDeployment of `folder`/deployment.yml with the flags' values laid over.

    Request settings, probes, environment and scoring script stay as the YAML has them.
    """
    from azure.ai.ml import load_online_deployment

    deployment = load_entity(load_online_deployment, folder / DEPLOYMENT_FILE)
    _override_common(deployment, folder, endpoint=endpoint, model=model, name=name)
    if instance_type is not None:
        deployment.instance_type = instance_type
    if instance_count is not None:
        deployment.instance_count = _positive(instance_count, "--instance-count")
    return deployment


def batch_endpoint(folder: Path, *, name: str) -> Any:
    """The BatchEndpoint of `folder`/endpoint.yml, renamed `name`."""
    from azure.ai.ml import load_batch_endpoint

    endpoint = load_entity(load_batch_endpoint, folder / ENDPOINT_FILE)
    endpoint.name = check_endpoint_name(name)
    return endpoint


def batch_deployment(
    folder: Path,
    *,
    endpoint: str,
    model: Any,
    compute: str | None = None,
    name: str | None = None,
    instance_count: int | None = None,
) -> Any:
    """The batch deployment of `folder`/deployment.yml with the flags' values laid over.

    `compute` None keeps the YAML's cluster; mini-batch, retry and output settings stay as the
    YAML has them.
    """
    from azure.ai.ml import load_batch_deployment
    from azure.ai.ml.entities import ResourceConfiguration

    deployment = load_entity(load_batch_deployment, folder / DEPLOYMENT_FILE)
    _override_common(deployment, folder, endpoint=endpoint, model=model, name=name)
    if compute is not None:
        deployment.compute = compute
    if not deployment.compute:
        raise ConfigError(f"{folder / DEPLOYMENT_FILE} names no compute cluster; pass --compute")
    deployment.compute = str(deployment.compute).removeprefix("azureml:")
    if instance_count is not None:
        count = _positive(instance_count, "--instance-count")
        if deployment.resources is None:
            deployment.resources = ResourceConfiguration(instance_count=count)
        else:
            deployment.resources.instance_count = count
    return deployment


def compute_cluster(name: str, *, size: str, max_instances: int = BATCH_MAX_INSTANCES) -> Any:
    """An AmlCompute cluster of `size` that scales between 0 and `max_instances` nodes."""
    from azure.ai.ml.entities import AmlCompute

    return AmlCompute(
        name=name,
        size=size,
        min_instances=0,
        max_instances=_positive(max_instances, "--max-instances"),
        idle_time_before_scale_down=IDLE_SECONDS_BEFORE_SCALE_DOWN,
    )


def entity_document(entity: Any) -> dict[str, Any]:
    """An entity as the YAML document its azure-ai-ml loader reads back.

    `_to_dict` of a ModelBatchDeployment nests its settings under `settings:`, a key that
    `load_batch_deployment` refuses; the YAML form has them at the top level, so they move there.
    """
    doc = json.loads(json.dumps(entity._to_dict(), default=str))  # OrderedDicts → plain dicts
    settings = doc.pop("settings", None) if doc.get("type") == "model" else None
    if isinstance(settings, dict):
        doc.update(settings)
    return doc


def to_yaml(documents: Iterable[Any]) -> str:
    """Entities (or plain mappings) as a stream of YAML documents, in order."""
    docs = [d if isinstance(d, dict) else entity_document(d) for d in documents]
    return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True, width=1000)


def _override_common(
    deployment: Any, folder: Path, *, endpoint: str, model: Any, name: str | None
) -> None:
    deployment.endpoint_name = check_endpoint_name(endpoint)
    deployment.model = model
    if name is not None:
        if not DEPLOYMENT_NAME.match(name):
            raise ConfigError(
                f"deployment name {name!r} is not allowed: 3-32 letters, digits and '-', "
                "starting with a letter"
            )
        deployment.name = name
    # Relative code paths resolve against the YAML's folder; absolute ones keep meaning the
    # same files once the entity is printed (--dry-run) and loaded from somewhere else.
    code = deployment.code_configuration
    if code is not None and isinstance(code.code, str) and not _is_remote(code.code):
        code.code = str((folder / code.code).resolve())


def _is_remote(path: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]+:", path, re.I))


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise ConfigError(f"{flag} must be at least 1, got {value}")
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    return doc if isinstance(doc, dict) else {}
