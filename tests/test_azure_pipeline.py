"""The fine-tuning job document: the repository's pipeline components, inputs typed and bound."""

from __future__ import annotations

import pytest

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


def test_local_model_input_must_be_an_mlflow_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"not an MLflow model folder \(no MLmodel\)"):
        pipeline.asset_input(str(tmp_path), "mlflow_model", flag="--set mlflow_model")
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    assert pipeline.asset_input(str(tmp_path), "mlflow_model", flag="--set mlflow_model") == {
        "type": "mlflow_model",
        "path": str(tmp_path.resolve()),
    }
