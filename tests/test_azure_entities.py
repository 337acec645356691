"""Entities from the repository's endpoint YAMLs: overrides, model references, YAML output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from azure.ai.ml import load_batch_deployment

from deitkit.azure import entities
from deitkit.errors import ConfigError


@pytest.fixture
def online() -> Path:
    return entities.asset_folder(entities.ONLINE_ASSET)


@pytest.fixture
def batch() -> Path:
    return entities.asset_folder(entities.BATCH_ASSET)


@pytest.mark.parametrize(
    "reference",
    [
        "azureml:deit-fridge:3",
        "azureml:deit-fridge@latest",
        "azureml://registries/azureml/models/facebook-deit-base-patch16-224/versions/15",
    ],
)
def test_azureml_model_references_pass_through(reference):
    assert entities.model_reference(reference) == reference


@pytest.mark.parametrize("reference", ["deit-fridge:3", "azureml:deit-fridge", "azureml:3x:1"])
def test_other_model_references_are_refused_with_the_accepted_forms(reference):
    with pytest.raises(ConfigError, match=r"expected azureml:NAME:VERSION, azureml:NAME@latest"):
        entities.model_reference(reference)


def test_a_folder_without_mlmodel_is_not_a_model(tmp_path):
    with pytest.raises(ConfigError, match=r"not an MLflow model folder \(no MLmodel\)"):
        entities.model_reference(str(tmp_path))


def test_online_deployment_keeps_yaml_settings_and_lays_flags_over(online):
    deployment = entities.online_deployment(
        online, endpoint="deit-ep", model="azureml:m:1", name="blue", instance_count=3
    )
    source = yaml.safe_load((online / entities.DEPLOYMENT_FILE).read_text())
    assert (deployment.name, deployment.endpoint_name, deployment.model) == (
        "blue",
        "deit-ep",
        "azureml:m:1",
    )
    assert deployment.instance_count == 3
    assert deployment.instance_type == source["instance_type"]
    assert (
        deployment.request_settings.request_timeout_ms
        == source["request_settings"]["request_timeout_ms"]
    )
    # The scoring script's folder is absolute, so the printed entity works from anywhere.
    assert Path(deployment.code_configuration.code) == online.resolve()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"endpoint": "x"}, "endpoint name 'x' is not allowed"),
        ({"endpoint": "deit-ep", "name": "blue_1"}, "deployment name 'blue_1' is not allowed"),
        ({"endpoint": "deit-ep", "instance_count": 0}, "--instance-count must be at least 1"),
    ],
)
def test_bad_overrides_are_refused(online, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        entities.online_deployment(online, model="azureml:m:1", **kwargs)


def test_batch_deployment_prints_in_the_form_its_loader_reads(batch, tmp_path):
    deployment = entities.batch_deployment(
        batch, endpoint="deit-batch", model="azureml:m:1", compute="gpu", instance_count=2
    )
    (doc,) = yaml.safe_load_all(entities.to_yaml([deployment]))
    assert "settings" not in doc and doc["mini_batch_size"] == deployment.mini_batch_size
    path = tmp_path / "deployment.yml"
    path.write_text(yaml.safe_dump(doc))
    loaded = load_batch_deployment(path)
    assert type(loaded).__name__ == "ModelBatchDeployment"
    assert (loaded.compute, loaded.resources.instance_count) == ("gpu", 2)


def test_missing_or_broken_yaml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"endpoint\.yml: no such file"):
        entities.online_endpoint(tmp_path, name="deit-ep")
    (tmp_path / "endpoint.yml").write_text("name: deit-ep\nauth_mode: password\n")
    expected = r"endpoint\.yml: not a valid Azure ML entity: auth_mode: Value 'password'"
    with pytest.raises(ConfigError, match=expected):
        entities.online_endpoint(tmp_path, name="deit-ep")


def test_mlflow_model_tags_the_task_and_checks_the_name(tmp_path):
    (tmp_path / "MLmodel").write_text(
        yaml.safe_dump({"metadata": {"task": "image-classification"}})
    )
    model = entities.mlflow_model(tmp_path, name="deit.fridge-v2", tags={"team": "vision"})
    assert (model.type, model.tags) == (
        "mlflow_model",
        {"task": "image-classification", "team": "vision"},
    )
    with pytest.raises(ConfigError, match="model name '2deit' is not allowed"):
        entities.mlflow_model(tmp_path, name="2deit")
