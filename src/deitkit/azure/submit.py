"""The calls to Azure ML: each takes an MLClient (or a stand-in) and entities already gated."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError, DeitkitError

log = logging.getLogger(__name__)

FULL_TRAFFIC = 100


class AzureCallError(DeitkitError):
    """Azure ML refused or failed a call; the message names the call and Azure's reason."""


@contextlib.contextmanager
def azure_call(what: str) -> Iterator[None]:
    """Turn azure-core / azure-ai-ml exceptions raised inside into AzureCallError about `what`."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import AzureError, ClientAuthenticationError

    try:
        yield
    except ClientAuthenticationError as err:
        raise AzureCallError(
            f"{what}: cannot sign in to Azure ({_first_line(err)}); run `az login` or set "
            "AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET"
        ) from None
    except (AzureError, MlException) as err:
        raise AzureCallError(f"{what}: {_first_line(err)}") from None


def ensure_compute(client: Any, cluster: Any) -> Any:
    """The cluster called `cluster.name`: created as `cluster` when missing, else checked.

    Raises:
        ConfigError: the existing cluster's VM size is not `cluster.size` (the size the SKU
            gate passed), so the job would run on a size nobody checked.
    """
    from azure.core.exceptions import ResourceNotFoundError

    with azure_call(f"look up compute {cluster.name}"):
        try:
            existing = client.compute.get(cluster.name)
        except ResourceNotFoundError:
            existing = None
    if existing is None:
        log.info("creating compute cluster %s (%s)", cluster.name, cluster.size)
        with azure_call(f"create compute {cluster.name}"):
            return client.compute.begin_create_or_update(cluster).result()
    size = getattr(existing, "size", None)
    if str(size).lower() != cluster.size.lower():
        raise ConfigError(
            f"compute {cluster.name!r} exists with VM size {size}, not {cluster.size} "
            "(--instance-type); pass that size, or a new --compute name to create a "
            f"{cluster.size} cluster"
        )
    return existing


def submit_job(client: Any, job: Any, *, experiment_name: str | None = None) -> Any:
    """Submit a (pipeline) job; the returned job has its name and studio URL."""
    with azure_call("submit the fine-tuning pipeline job"):
        return client.jobs.create_or_update(job, experiment_name=experiment_name)


def register_model(client: Any, model: Any) -> Any:
    """Upload and register a model; the returned model has its version."""
    with azure_call(f"register model {model.name}"):
        return client.models.create_or_update(model)


def deploy_online(client: Any, endpoint: Any, deployment: Any) -> Any:
    """Create or update the endpoint, then the deployment, then send it all the traffic.

    The endpoint goes first without traffic: Azure refuses traffic to a deployment that does
    not exist yet. Returns the endpoint as Azure reports it (scoring URI included).
    """
    final_traffic = {deployment.name: FULL_TRAFFIC}
    endpoint.traffic = {}
    with azure_call(f"create online endpoint {endpoint.name}"):
        client.online_endpoints.begin_create_or_update(endpoint).result()
    with azure_call(f"create online deployment {deployment.name}"):
        client.online_deployments.begin_create_or_update(deployment).result()
    endpoint.traffic = final_traffic
    with azure_call(f"route traffic on {endpoint.name}"):
        client.online_endpoints.begin_create_or_update(endpoint).result()
        return client.online_endpoints.get(endpoint.name)


def deploy_batch(client: Any, endpoint: Any, deployment: Any, cluster: Any | None) -> Any:
    """Ensure the cluster, create the endpoint and deployment, make it the endpoint's default.

    `cluster` None: the caller has ensured it already.
    """
    if cluster is not None:
        ensure_compute(client, cluster)
    with azure_call(f"create batch endpoint {endpoint.name}"):
        client.batch_endpoints.begin_create_or_update(endpoint).result()
    with azure_call(f"create batch deployment {deployment.name}"):
        client.batch_deployments.begin_create_or_update(deployment).result()
    endpoint.defaults = {"deployment_name": deployment.name}
    with azure_call(f"set the default deployment of {endpoint.name}"):
        client.batch_endpoints.begin_create_or_update(endpoint).result()
        return client.batch_endpoints.get(endpoint.name)


def read_request(path: str | Path) -> Path:
    """`path` when it holds a JSON request body; ConfigError naming the problem otherwise."""
    path = Path(path)
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"--request {path}: cannot read: {err.strerror or err}") from None
    except ValueError as err:
        raise ConfigError(f"--request {path}: not JSON: {err}") from None
    return path


def invoke_online(
    client: Any, endpoint: str, request: str | Path, *, deployment: str | None = None
) -> str:
    """Send the JSON body in `request` to the online endpoint; return the response text."""
    path = read_request(request)
    with azure_call(f"invoke online endpoint {endpoint}"):
        return client.online_endpoints.invoke(
            endpoint_name=endpoint, request_file=str(path), deployment_name=deployment
        )


def batch_input(value: str) -> Any:
    """An Input for a batch job: a folder of images, or a file (a CSV with an `image` column)."""
    from azure.ai.ml import Input
    from azure.ai.ml.constants import AssetTypes

    if "://" in value or value.startswith("azureml:"):
        kind = AssetTypes.URI_FILE if value.lower().endswith(".csv") else AssetTypes.URI_FOLDER
        return Input(type=kind, path=value)
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"--input {value!r}: no such file or folder")
    kind = AssetTypes.URI_FOLDER if path.is_dir() else AssetTypes.URI_FILE
    return Input(type=kind, path=str(path.resolve()))


def invoke_batch(client: Any, endpoint: str, data: Any, *, deployment: str | None = None) -> Any:
    """Start a scoring job on the batch endpoint; returns the job (name, studio URL)."""
    with azure_call(f"invoke batch endpoint {endpoint}"):
        return client.batch_endpoints.invoke(
            endpoint_name=endpoint, input=data, deployment_name=deployment
        )


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "message", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__
