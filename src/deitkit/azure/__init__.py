"""Azure ML submission: workspace, entities from the asset YAMLs, and the gated calls."""

from deitkit.azure.entities import (
    batch_deployment,
    batch_endpoint,
    compute_cluster,
    mlflow_model,
    model_reference,
    online_deployment,
    online_endpoint,
    to_yaml,
)
from deitkit.azure.pipeline import FinetuneRequest, finetune_job_document, load_finetune_job
from deitkit.azure.submit import (
    AzureCallError,
    deploy_batch,
    deploy_online,
    ensure_compute,
    invoke_batch,
    invoke_online,
    register_model,
    submit_job,
)
from deitkit.azure.workspace import Workspace, connect, resolve_workspace

__all__ = [
    "AzureCallError",
    "FinetuneRequest",
    "Workspace",
    "batch_deployment",
    "batch_endpoint",
    "compute_cluster",
    "connect",
    "deploy_batch",
    "deploy_online",
    "ensure_compute",
    "finetune_job_document",
    "invoke_batch",
    "invoke_online",
    "load_finetune_job",
    "mlflow_model",
    "model_reference",
    "online_deployment",
    "online_endpoint",
    "register_model",
    "resolve_workspace",
    "submit_job",
    "to_yaml",
]
