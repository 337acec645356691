"""`deitkit azure`: fine-tune, register, deploy and invoke on Azure ML, each SKU-gated first."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from deitkit.assets.manifest import load_manifest
from deitkit.azure import entities, pipeline, submit
from deitkit.azure import environments as envs
from deitkit.azure import workspace as ws
from deitkit.cli.azure_assets import data, environments
from deitkit.cli.azure_options import client_for as _client
from deitkit.cli.azure_options import echo_lines as _echo_lines
from deitkit.cli.azure_options import parse_pairs as _pairs
from deitkit.cli.azure_options import sku_gate as _gate
from deitkit.cli.azure_options import workspace_options as _options
from deitkit.errors import ConfigError
from deitkit.skus import Purpose
from deitkit.tasks import Task


@click.group()
def azure() -> None:
    """Submit fine-tuning, register models and deploy endpoints on Azure ML (azure-ai-ml)."""
    # azure-ai-ml logs a warning per experimental schema class it builds, none about our use.
    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)


@azure.command("workspace")
@_options(assets=False, dry_run=False)
def workspace(**kw: Any) -> None:
    """Check which workspace the flags or config.json name, without calling Azure.

    Exits 2 when a value is missing or still a template placeholder (<SUBSCRIPTION_ID>, ...),
    so a script can stop before it spends any time or money.
    """
    found = ws.resolve_workspace(
        subscription=kw["subscription"],
        resource_group=kw["resource_group"],
        workspace=kw["workspace"],
        config=kw["config"],
    )
    click.echo(
        f"workspace {found.workspace_name} in resource group {found.resource_group}, "
        f"subscription {found.subscription_id} (from {found.source})"
    )


@azure.command()
@click.option(
    "--task",
    type=click.Choice([t.value for t in Task]),
    default=Task.MULTICLASS.value,
    show_default=True,
    help="Picks the pipeline component.",
)
@click.option("--training-data", required=True, help="MLTable folder, or an azureml: / URI.")
@click.option("--validation-data", default=None, help="Same forms as --training-data.")
@click.option("--test-data", default=None, help="Evaluation data (default: --validation-data).")
@click.option("--model-name", default=None, help="Model to fine-tune (pipeline input model_name).")
@click.option("--instance-type", required=True, help="VM size of the model's steps (SKU-gated).")
@click.option(
    "--compute", default=None, help="Cluster to run on (created when missing); default serverless."
)
@click.option("--instance-count", type=int, default=None, help="Nodes for distributed training.")
@click.option("--set", "settings", multiple=True, help="NAME=VALUE for any other pipeline input.")
@click.option(
    "--experiment",
    default=pipeline.DEFAULT_EXPERIMENT,
    show_default=True,
    help="Experiment the pipeline job is filed under in the workspace.",
)
@_options()
@_echo_lines
def finetune(**kw: Any):
    """Submit the fine-tuning pipeline job for --task."""
    manifest = load_manifest(kw["manifest"])
    check = _gate(kw["instance_type"], Purpose.FINETUNE, model=kw["sku_model"], manifest=manifest)
    path = pipeline.pipeline_component_path(Task(kw["task"]), manifest)
    component = pipeline.load_pipeline_component(path)
    for purpose in pipeline.gated_purposes(component):  # evaluation runs on the same size
        _gate(check.size.name, purpose, model=kw["sku_model"], manifest=manifest)
    request = pipeline.FinetuneRequest(
        task=Task(kw["task"]),
        training_data=kw["training_data"],
        validation_data=kw["validation_data"],
        test_data=kw["test_data"],
        model_name=kw["model_name"],
        compute=kw["compute"],
        instance_type=check.size.name,
        instance_count=kw["instance_count"],
        gpus_per_instance=check.size.gpus,
        inputs=_pairs(kw["settings"], "--set"),
        experiment_name=kw["experiment"],
    )
    document = pipeline.finetune_job_document(request, path, component)
    job = pipeline.load_finetune_job(document)
    plans = envs.plan_environments(envs.environment_names(job), manifest)
    cluster = None
    if request.compute:
        cluster = entities.compute_cluster(
            request.compute, size=request.instance_type, max_instances=request.instance_count or 1
        )
    if kw["dry_run"]:
        # The job names its steps' components by file; each step runs in the exact
        # environment version listed before it (the components say @latest).
        clusters = [cluster] if cluster is not None else []
        return [entities.to_yaml([*clusters, *(plan.entity for plan in plans), document])]
    client = _client(kw)
    if cluster is not None:
        submit.ensure_compute(client, cluster)
    lines = _register_environments(client, plans)
    envs.bind(job, plans)
    submitted = submit.submit_job(client, job, experiment_name=request.experiment_name)
    return [*lines, f"submitted job {submitted.name}", f"studio: {submitted.studio_url}"]


def _register_environments(client: Any, plans: list[envs.BuildPlan]) -> list[str]:
    """Register the planned environments the workspace lacks; a line for each one registered."""
    return [f"registered environment {p.reference}" for p in envs.register_missing(client, plans)]


@azure.command("register-model")
@click.option(
    "--path",
    "model_path",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="MLflow model folder (deitkit package writes one).",
)
@click.option("--name", required=True, help="Model name in the workspace.")
@click.option("--version", default=None, help="Default: the next version.")
@click.option("--description", default=None, help="Description of the model in the workspace.")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE (repeatable).")
@_options(assets=False)
@_echo_lines
def register_model(**kw: Any):
    """Register a packaged MLflow model folder as an mlflow_model asset."""
    model = entities.mlflow_model(
        kw["model_path"],
        name=kw["name"],
        version=kw["version"],
        description=kw["description"],
        tags=_pairs(kw["tags"], "--tag"),
    )
    if kw["dry_run"]:
        return [entities.to_yaml([model])]
    registered = submit.register_model(_client(kw), model)
    return [f"registered azureml:{registered.name}:{registered.version}"]


@azure.command("deploy-online")
@click.option("--endpoint", required=True, help="Online endpoint name (created when missing).")
@click.option("--model", required=True, help="azureml:NAME:VERSION or an MLflow model folder.")
@click.option("--deployment", default=None, help="Deployment name (default: deployment.yml's).")
@click.option("--instance-type", default=None, help="VM size (default: deployment.yml's).")
@click.option("--instance-count", type=int, default=None, help="Default: deployment.yml's.")
@_options()
@_echo_lines
def deploy_online(**kw: Any):
    """Create the online endpoint and deployment and route all traffic to the deployment."""
    manifest = load_manifest(kw["manifest"])
    folder = entities.asset_folder(entities.ONLINE_ASSET, manifest)
    endpoint = entities.online_endpoint(folder, name=kw["endpoint"])
    deployment = entities.online_deployment(
        folder,
        endpoint=endpoint.name,
        model=entities.model_reference(kw["model"]),
        name=kw["deployment"],
        instance_type=kw["instance_type"],
        instance_count=kw["instance_count"],
    )
    if not deployment.instance_type:
        raise ConfigError(f"{folder / entities.DEPLOYMENT_FILE} sets no instance_type; pass one")
    check = _gate(
        deployment.instance_type, Purpose.INFERENCE, model=kw["sku_model"], manifest=manifest
    )
    deployment.instance_type = check.size.name
    plans = envs.plan_environments(envs.environment_names(deployment), manifest)
    envs.bind(deployment, plans)
    if kw["dry_run"]:
        endpoint.traffic = {deployment.name: submit.FULL_TRAFFIC}
        return [entities.to_yaml([*(plan.entity for plan in plans), endpoint, deployment])]
    client = _client(kw)
    lines = _register_environments(client, plans)
    result = submit.deploy_online(client, endpoint, deployment)
    return [
        *lines,
        f"deployed {deployment.name} to {endpoint.name} (100% of traffic)",
        f"scoring uri: {getattr(result, 'scoring_uri', None)}",
    ]


@azure.command("deploy-batch")
@click.option("--endpoint", required=True, help="Batch endpoint name (created when missing).")
@click.option("--model", required=True, help="azureml:NAME:VERSION or an MLflow model folder.")
@click.option("--compute", default=None, help="Cluster (default: deployment.yml's; created).")
@click.option(
    "--instance-type",
    default=None,
    help=f"VM size of the cluster (default: deployment.yml's {entities.COMPUTE_SIZE_TAG} tag).",
)
@click.option("--deployment", default=None, help="Deployment name (default: deployment.yml's).")
@click.option("--instance-count", type=int, default=None, help="Nodes per scoring job.")
@click.option(
    "--max-instances",
    type=int,
    default=entities.BATCH_MAX_INSTANCES,
    show_default=True,
    help="Most nodes the batch cluster scales out to (it scales in to 0).",
)
@_options()
@_echo_lines
def deploy_batch(**kw: Any):
    """Create the compute cluster, batch endpoint and deployment; make it the default."""
    manifest = load_manifest(kw["manifest"])
    folder = entities.asset_folder(entities.BATCH_ASSET, manifest)
    endpoint = entities.batch_endpoint(folder, name=kw["endpoint"])
    deployment = entities.batch_deployment(
        folder,
        endpoint=endpoint.name,
        model=entities.model_reference(kw["model"]),
        compute=kw["compute"],
        name=kw["deployment"],
        instance_count=kw["instance_count"],
    )
    tags = deployment.tags if deployment.tags is not None else {}
    size = kw["instance_type"] or tags.get(entities.COMPUTE_SIZE_TAG)
    if not size:
        raise ConfigError(
            f"{folder / entities.DEPLOYMENT_FILE} has no {entities.COMPUTE_SIZE_TAG} tag; "
            "pass --instance-type"
        )
    check = _gate(size, Purpose.INFERENCE, model=kw["sku_model"], manifest=manifest)
    instance_type = check.size.name
    deployment.tags = {**tags, entities.COMPUTE_SIZE_TAG: instance_type}
    count = deployment.resources.instance_count if deployment.resources else None
    if count is not None and count > kw["max_instances"]:
        raise ConfigError(
            f"--instance-count {count} exceeds the cluster's --max-instances {kw['max_instances']}"
        )
    cluster = entities.compute_cluster(
        deployment.compute, size=instance_type, max_instances=kw["max_instances"]
    )
    plans = envs.plan_environments(envs.environment_names(deployment), manifest)
    envs.bind(deployment, plans)
    if kw["dry_run"]:
        endpoint.defaults = {"deployment_name": deployment.name}
        documents = [*(plan.entity for plan in plans), cluster, endpoint, deployment]
        return [entities.to_yaml(documents)]
    client = _client(kw)
    submit.ensure_compute(client, cluster)  # a refused cluster stops it before any upload
    lines = _register_environments(client, plans)
    submit.deploy_batch(client, endpoint, deployment, None)
    return [*lines, f"deployed {deployment.name} as the default of batch endpoint {endpoint.name}"]


@azure.command("invoke-online")
@click.option("--endpoint", required=True, help="Online endpoint name.")
@click.option(
    "--request",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON request body (see docs: input_data, dataframe_split, ...).",
)
@click.option("--deployment", default=None, help="Default: as the endpoint's traffic routes.")
@_options(assets=False, dry_run=False)
@_echo_lines
def invoke_online(**kw: Any):
    """Score the JSON body in --request on the online endpoint; print the response."""
    request = submit.read_request(kw["request"])
    client = _client(kw)
    return [submit.invoke_online(client, kw["endpoint"], request, deployment=kw["deployment"])]


@azure.command("invoke-batch")
@click.option("--endpoint", required=True, help="Batch endpoint name.")
@click.option("--input", "data", required=True, help="Image folder, CSV file, or a URI.")
@click.option("--deployment", default=None, help="Default: the endpoint's default deployment.")
@_options(assets=False, dry_run=False)
@_echo_lines
def invoke_batch(**kw: Any):
    """Start a batch scoring job on the endpoint; print the job name."""
    data = submit.batch_input(kw["data"])
    job = submit.invoke_batch(_client(kw), kw["endpoint"], data, deployment=kw["deployment"])
    return [f"started batch job {job.name}", f"studio: {getattr(job, 'studio_url', None)}"]


azure.add_command(data)
azure.add_command(environments)
