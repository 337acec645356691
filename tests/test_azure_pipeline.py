"""The fine-tuning job document: the repository's pipeline components, inputs typed and bound."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from deitkit.assets.manifest import load_manifest
from deitkit.azure import pipeline
from deitkit.errors import ConfigError
from deitkit.skus import Purpose
from deitkit.tasks import Task


@pytest.mark.parametrize("task", list(Task))
def test_each_task_has_a_pipeline_whose_model_steps_are_gated(task):
    path = pipeline.pipeline_component_path(task)
    component = pipeline.load_pipeline_component(path)
    assert pipeline.gated_purposes(component) == [Purpose.FINETUNE, Purpose.EVALUATION]
    assert {"training_data", "validation_data", "model_name"} <= set(component.inputs)


def test_document_binds_flags_and_typed_settings():
    request = pipeline.FinetuneRequest(
        task=Task.MULTILABEL,
        training_data="azureml:t:1",
        test_data="azureml:test:1",
        instance_type="Standard_NC24s_v3",
        gpus_per_instance=4,
        inputs={"early_stopping": "True", "weight_decay": "0.01", "mlflow_model": "azureml:m:2"},
    )
    doc = pipeline.finetune_job_document(request, pipeline.pipeline_component_path(Task.MULTILABEL))
    inputs = doc["jobs"][pipeline.NODE]["inputs"]
    assert inputs["early_stopping"] is True and inputs["weight_decay"] == 0.01
    assert inputs["mlflow_model"] == {"type": "mlflow_model", "path": "azureml:m:2"}
    assert inputs["test_data"] == {"type": "mltable", "path": "azureml:test:1"}
    assert "validation_data" not in inputs  # optional: the component splits training_data
    assert inputs["process_count_per_instance"] == 4
    assert not any(name.startswith("compute_") for name in inputs)  # serverless defaults
    assert pipeline.load_finetune_job(doc).settings.default_compute == "serverless"


@pytest.mark.parametrize(
    "value, input_type, message",
    [
        ("yes", "boolean", "expected true or false, got 'yes'"),
        ("1e-3x", "number", "expected number, got '1e-3x'"),
    ],
)
def test_bad_values_name_the_flag_and_the_type(value, input_type, message):
    with pytest.raises(ConfigError, match=message):
        pipeline.coerce_input(value, input_type, flag="--set x")


def test_local_model_input_must_be_an_mlflow_folder_deitkit_reads(tmp_path):
    from helpers import save_catalog_model, save_hftransformersv2_model

    with pytest.raises(ConfigError, match=r"not an MLflow model folder \(no MLmodel\)"):
        pipeline.asset_input(str(tmp_path), "mlflow_model", flag="--set mlflow_model")
    legacy = save_hftransformersv2_model(tmp_path / "legacy")
    with pytest.raises(ConfigError, match=r"^--set mlflow_model: .*hftransformersv2") as err:
        pipeline.asset_input(str(legacy), "mlflow_model", flag="--set mlflow_model")
    assert "\n" not in str(err.value)
    catalog = save_catalog_model(tmp_path / "catalog")
    assert pipeline.asset_input(str(catalog), "mlflow_model", flag="--set mlflow_model") == {
        "type": "mlflow_model",
        "path": str(catalog.resolve()),
    }


# --- model_specific_defaults -------------------------------------------------------------

SUB = "12345678-90ab-cdef-1234-567890abcdef"
SUBMIT = (
    "azure finetune --training-data azureml:fridge-train:1 --validation-data azureml:fridge-val:1"
    f" --instance-type Standard_NC6s_v3 --subscription {SUB} --resource-group rg --workspace ws"
)


def _registered_mltable(client, name: str, folder: Path) -> None:
    """Register `name:1` as an mltable data asset in the mock (a fresh workspace has none)."""
    from azure.ai.ml.entities import Data

    folder.mkdir(parents=True)
    (folder / "rows.jsonl").write_text(
        '{"image_url": "https://example.org/can/1.jpg", "label": "can"}\n'
    )
    (folder / "MLTable").write_text(
        "paths:\n  - file: ./rows.jsonl\ntransformations:\n"
        "  - read_json_lines:\n      encoding: utf8\n      include_path_column: false\n"
    )
    client.data.create_or_update(Data(name=name, version="1", type="mltable", path=str(folder)))


def _submitted_inputs(monkeypatch, command: str, tmp_path: Path) -> dict:
    """`deitkit COMMAND` against the mock MLClient; the inputs of the job it submitted."""
    from azure_mock import MockMLClient
    from click.testing import CliRunner

    from deitkit.cli.main import cli

    client = MockMLClient()
    for name in ("fridge-train", "fridge-val"):
        _registered_mltable(client, name, tmp_path / name)
    monkeypatch.setattr("deitkit.azure.workspace.connect", lambda workspace, **kw: client)
    result = CliRunner().invoke(cli, shlex.split(command))
    assert result.exit_code == 0, result.output
    (call,) = client.of("jobs", "create_or_update")
    (node,) = call.entity.jobs.values()
    return {name: getattr(value, "_data", value) for name, value in node.inputs.items()}


def test_the_catalog_models_defaults_apply_where_the_user_set_nothing(monkeypatch, tmp_path):
    # No --model-name: the pipeline's default model_name, facebook/deit-base-patch16-224,
    # whose catalog entry says apply_deepspeed: 'true', apply_ort: 'true'.
    inputs = _submitted_inputs(monkeypatch, f"{SUBMIT} --set apply_ort=false", tmp_path)
    assert inputs["apply_deepspeed"] is True  # the model's default
    assert inputs["apply_ort"] is False  # the user's --set wins


def test_a_model_without_a_catalog_entry_gets_the_pipelines_own_defaults(monkeypatch, tmp_path):
    command = f"{SUBMIT} --model-name scratch:deit-tiny"
    inputs = _submitted_inputs(monkeypatch, command, tmp_path)
    assert inputs.get("apply_deepspeed") is None and inputs.get("apply_ort") is None


VIT = "google-vit-base-patch16-224"


@pytest.mark.parametrize(
    "given, asset",
    [
        ({"model_name": "google/vit-base-patch16-224"}, VIT),  # a Hugging Face id
        ({"model_name": VIT}, VIT),  # a model asset name
        ({}, "facebook-deit-base-patch16-224"),  # the pipeline's default model_name
        ({"mlflow_model": f"azureml://registries/azureml/models/{VIT}/versions/3"}, VIT),
        ({"mlflow_model": f"azureml:{VIT}:3"}, VIT),
        ({"mlflow_model": f"azureml:{VIT}@latest"}, VIT),
        ({"mlflow_model": "azureml:my-deit:1"}, None),  # wins over the default model_name
        ({"model_name": "scratch:deit-tiny"}, None),
    ],
)
def test_the_catalog_entry_is_that_of_the_model_the_pipeline_runs(given, asset):
    component = pipeline.load_pipeline_component(pipeline.pipeline_component_path(Task.MULTICLASS))
    declared = dict(component.inputs)
    inputs = {
        name: pipeline.coerce_input(value, declared[name].type, flag=name)
        for name, value in given.items()
    }
    found = pipeline.catalog_model(load_manifest(), inputs, declared)
    assert (found and found.name) == asset


def test_a_catalog_default_of_the_wrong_type_names_the_manifest_field(caplog):
    manifest = load_manifest()
    deit = manifest.model("facebook-deit-base-patch16-224")
    odd = {"apply_ort": "maybe", "no_such_input": "1"}
    changed = dataclasses.replace(deit, tags={**deit.tags, "model_specific_defaults": odd})
    manifest = dataclasses.replace(manifest, models=(changed,))
    request = pipeline.FinetuneRequest(
        task=Task.MULTICLASS,
        training_data="azureml:t:1",
        test_data="azureml:t:1",
        instance_type="Standard_NC6s_v3",
    )
    path = pipeline.pipeline_component_path(Task.MULTICLASS)
    with pytest.raises(ConfigError, match=r"models\[0\]\.tags\.model_specific_defaults\.apply_ort"):
        pipeline.finetune_job_document(request, path, manifest=manifest)
    odd.pop("apply_ort")
    document = pipeline.finetune_job_document(request, path, manifest=manifest)
    assert "no_such_input" not in document["jobs"][pipeline.NODE]["inputs"]
    assert "the pipeline has no input 'no_such_input'" in caplog.text
