"""The fine-tuning pipeline job: the repository's pipeline component with the CLI's inputs bound."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deitkit.assets.manifest import MANIFEST_FILE, Manifest, ModelAsset, load_manifest
from deitkit.azure.entities import MLMODEL_FILE, asset_folder, describe_error, load_entity
from deitkit.azure.mltables import check_uploadable
from deitkit.errors import ConfigError
from deitkit.skus import Purpose
from deitkit.tasks import Task

PIPELINE_ASSETS = {
    Task.MULTICLASS: "deitkit_image_classification_pipeline",
    Task.MULTILABEL: "deitkit_image_classification_multilabel_pipeline",
}
SPEC_FILE = "spec.yaml"
JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"
DEFAULT_EXPERIMENT = "deitkit-finetune"
NODE = "finetune"
SERVERLESS = "serverless"
ASSET_TYPES = ("mltable", "uri_folder", "uri_file", "mlflow_model", "custom_model")
# Azure's fine-tuning pipelines take a compute per step (compute_<step>) and, on serverless
# compute, a VM size per step (instance_type_<step>). The steps that run the model are the
# ones whose size the SKU gate checks, each against its own allow-list.
COMPUTE_PREFIX = "compute_"
INSTANCE_TYPE_PREFIX = "instance_type_"
GATED_STEPS = {"finetune": Purpose.FINETUNE, "model_evaluation": Purpose.EVALUATION}
FLAG_INPUTS = {
    "task_name": "--task",
    "training_data": "--training-data",
    "validation_data": "--validation-data",
    "test_data": "--test-data",
    "model_name": "--model-name",
    "instance_count": "--instance-count",
}
URI = re.compile(r"^[a-z][a-z0-9+.-]+:", re.I)  # azureml:, azureml://, https://, abfss://, ...
# The model name in a registered model's reference: azureml://registries/R/models/NAME/...,
# azureml://.../workspaces/W/models/NAME/..., azureml:NAME:VERSION or azureml:NAME@LABEL.
_MODEL_URI = re.compile(r"/models/([^/]+)|^azureml:([^:/@]+)[:@]")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneRequest:
    """What `deitkit azure finetune` was asked for, named after the pipeline's inputs.

    `compute` None runs every step on serverless compute of `instance_type`.
    """

    task: Task
    training_data: str
    instance_type: str
    compute: str | None = None
    validation_data: str | None = None
    test_data: str | None = None
    model_name: str | None = None
    instance_count: int | None = None
    gpus_per_instance: int = 0
    inputs: Mapping[str, Any] = field(default_factory=dict)
    experiment_name: str = DEFAULT_EXPERIMENT


def pipeline_component_path(task: Task, manifest: Manifest | None = None) -> Path:
    """The spec.yaml of the pipeline component for `task`, as the manifest indexes it."""
    return asset_folder(PIPELINE_ASSETS[task], manifest) / SPEC_FILE


def load_pipeline_component(path: Path) -> Any:
    """The PipelineComponent at `path` (its steps' component files are read too)."""
    from azure.ai.ml import load_component

    return load_entity(load_component, path)


def gated_purposes(component: Any) -> list[Purpose]:
    """The allow-lists the pipeline's VM size must be on: one per model-running step it has."""
    names = set(component.inputs)
    return [
        purpose
        for step, purpose in GATED_STEPS.items()
        if {COMPUTE_PREFIX + step, INSTANCE_TYPE_PREFIX + step} & names
    ]


def finetune_job_document(
    request: FinetuneRequest,
    component_path: Path,
    component: Any = None,
    *,
    manifest: Manifest | None = None,
) -> dict[str, Any]:
    """The pipeline job YAML (a mapping): one node running the component at `component_path`.

    The node refers to the component file by absolute path, so the document loads with
    `load_job` anywhere (an inline pipeline component does not: azure-ai-ml refuses it).
    Inputs the request leaves unset take the `model_specific_defaults` of the model's
    catalog entry, where it has one (`model_defaults`).

    Args:
        request: The flags.
        component_path: The pipeline component's spec.yaml.
        component: That file already loaded, if it was.
        manifest: The manifest whose catalog holds the model; default: the one that indexes
            the component (`manifest_of`).

    Raises:
        ConfigError: an input the component does not declare, a required one missing, a
            compute or size set around the SKU gate, or local data that is not there.
    """
    component = component or load_pipeline_component(component_path)
    declared = dict(component.inputs)
    where = f"{component_path} ({component.name})"

    def bind(name: str, value: Any, flag: str) -> None:
        if name not in declared:
            raise ConfigError(
                f"{flag}: the pipeline component {where} has no input {name!r}; "
                f"its inputs: {', '.join(sorted(declared))}"
            )
        inputs[name] = coerce_input(value, declared[name].type, flag=flag)

    inputs: dict[str, Any] = {}
    for name, value in request.inputs.items():
        if name in FLAG_INPUTS:
            raise ConfigError(f"--set {name}: set it with {FLAG_INPUTS[name]}")
        if name.startswith((COMPUTE_PREFIX, INSTANCE_TYPE_PREFIX)):
            raise ConfigError(f"--set {name}: set it with --compute / --instance-type (SKU-gated)")
        bind(name, value, f"--set {name}")
    if "task_name" in declared:
        inputs["task_name"] = request.task.value
    test_data = request.test_data or request.validation_data
    for name, value in (
        ("training_data", request.training_data),
        ("validation_data", request.validation_data),
        ("test_data", test_data if "test_data" in declared else request.test_data),
        ("model_name", request.model_name),
        ("instance_count", request.instance_count),
    ):
        if value is not None:
            bind(name, value, FLAG_INPUTS[name])
    for name, value in model_defaults(manifest or manifest_of(component_path), inputs, declared):
        inputs.setdefault(name, value)  # what the user set wins
    if "process_count_per_instance" in declared and request.gpus_per_instance:
        # One training process per GPU: the pipeline's own default (1) idles the other GPUs.
        inputs.setdefault("process_count_per_instance", request.gpus_per_instance)
    for name in declared:
        if name.startswith(COMPUTE_PREFIX) and request.compute:
            inputs[name] = request.compute
        elif name.removeprefix(INSTANCE_TYPE_PREFIX) in GATED_STEPS:
            inputs[name] = request.instance_type
    missing = [n for n, i in declared.items() if not i.optional and i.default is None]
    missing = [n for n in missing if n not in inputs]
    if missing:
        hints = {**FLAG_INPUTS, "test_data": "--test-data (or --validation-data)"}
        flags = ", ".join(hints.get(n, f"--set {n}=...") for n in missing)
        raise ConfigError(f"the pipeline component {where} needs {flags}")
    outputs = {name: {"type": output.type} for name, output in component.outputs.items()}
    compute = f"azureml:{request.compute}" if request.compute else SERVERLESS
    return {
        "$schema": JOB_SCHEMA,
        "type": "pipeline",
        "display_name": f"deitkit {request.task.value} fine-tune",
        "experiment_name": request.experiment_name,
        "settings": {"default_compute": compute},
        "jobs": {
            NODE: {
                "type": "pipeline",
                "component": str(component_path.resolve()),
                "inputs": inputs,
                "outputs": {name: f"${{{{parent.outputs.{name}}}}}" for name in outputs},
            }
        },
        "outputs": outputs,
    }


def manifest_of(component_path: Path) -> Manifest | None:
    """The manifest that indexes `component_path`: the nearest assets.yaml above it, if any.

    Index paths are relative to the manifest's folder and never climb out of it, so the
    manifest a component was found through lies above the component.
    """
    for folder in Path(component_path).resolve().parents:
        if (folder / MANIFEST_FILE).is_file():
            return load_manifest(folder / MANIFEST_FILE)
    return None


def model_defaults(
    manifest: Manifest | None, inputs: Mapping[str, Any], declared: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    """The `model_specific_defaults` of the model the pipeline will fine-tune, typed.

    The model is the one the finetune component picks: `mlflow_model` when given (a registered
    model's name), else `model_name` or the pipeline's default of it (a Hugging Face id or a
    model asset name). Compute and VM size inputs are left to the SKU gate; defaults for
    inputs the pipeline does not declare are skipped with a warning.

    Raises:
        ConfigError: a default that is not a value of its input's type, naming the manifest
            field.
    """
    asset = catalog_model(manifest, inputs, declared) if manifest is not None else None
    if asset is None:
        return []
    defaults = asset.tags.get("model_specific_defaults") or {}
    typed = []
    for name, value in defaults.items():
        where = asset.field("tags", "model_specific_defaults", name)
        if name not in declared:
            log.warning("%s: the pipeline has no input %r; not applied", where, name)
        elif not name.startswith((COMPUTE_PREFIX, INSTANCE_TYPE_PREFIX)):
            typed.append((name, coerce_input(value, declared[name].type, flag=where)))
    return typed


def catalog_model(
    manifest: Manifest, inputs: Mapping[str, Any], declared: Mapping[str, Any]
) -> ModelAsset | None:
    """The manifest's model asset for the model the pipeline runs, or None when it has none."""
    given = inputs.get("mlflow_model")
    if given is not None:
        match = _MODEL_URI.search(str(given.get("path", "")) if isinstance(given, dict) else "")
        names = {next(filter(None, match.groups()))} if match else set()
    else:
        name = inputs.get("model_name")
        if name is None and "model_name" in declared:
            name = declared["model_name"].default
        names = {str(name)} if name is not None else set()
    for asset in manifest.models:
        if names & {asset.name, asset.tags.get("huggingface_model_id")}:
            return asset
    return None


def load_finetune_job(document: Mapping[str, Any]) -> Any:
    """The PipelineJob entity `load_job` makes of a `finetune_job_document`."""
    from azure.ai.ml import load_job

    text = yaml.safe_dump(dict(document), sort_keys=False)
    try:
        return load_job(source=io.StringIO(text))
    except Exception as err:  # marshmallow and azure-ai-ml raise several unrelated types
        raise ConfigError(
            f"the fine-tuning pipeline job is not valid: {describe_error(err)}"
        ) from None


def coerce_input(value: Any, input_type: str, *, flag: str) -> Any:
    """`value` (often a string from the command line) as the component input type wants it."""
    if not isinstance(value, str):
        return value
    if input_type in ASSET_TYPES:
        return asset_input(value, input_type, flag=flag)
    try:
        if input_type == "integer":
            return int(value)
        if input_type == "number":
            return float(value)
    except ValueError:
        raise ConfigError(f"{flag}: expected {input_type}, got {value!r}") from None
    if input_type == "boolean":
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"{flag}: expected true or false, got {value!r}")
        return value.lower() == "true"
    return value


def asset_input(value: str, input_type: str, *, flag: str) -> dict[str, str]:
    """A job input for data or a model at `value`: a URI as given, or a local path made absolute.

    Raises:
        ConfigError: the local path is missing, or is not what the input type reads (an
            MLTable folder for mltable, an MLflow model folder deitkit reads for mlflow_model),
            or is an
            MLTable whose images lie outside its folder (Azure uploads only the folder).
    """
    if URI.match(value):
        return {"type": input_type, "path": value}
    path = Path(value).resolve()
    if not path.exists():
        raise ConfigError(f"{flag} {value!r}: no such file or folder")
    if input_type == "mltable" and not (path / "MLTable").is_file():
        raise ConfigError(
            f"{flag} {value!r}: the pipeline reads an MLTable folder (an MLTable file beside "
            "JSONL annotations); `deitkit data import` writes one"
        )
    if input_type == "mltable":
        check_uploadable(path, flag=flag)  # only the folder uploads: its images must be in it
    if input_type == "mlflow_model":
        if not (path / MLMODEL_FILE).is_file():
            raise ConfigError(f"{flag} {value!r}: not an MLflow model folder (no {MLMODEL_FILE})")
        # The finetune component reads it with the same code: refuse here what it would refuse
        # there (hftransformersv2, another task, missing weights) before paying for a job.
        from deitkit.inference.mlflow_layouts import model_files

        try:
            model_files(path)
        except ConfigError as err:
            raise ConfigError(f"{flag}: {err}") from None
    return {"type": input_type, "path": str(path)}
