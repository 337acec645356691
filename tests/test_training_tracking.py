"""Tests for deitkit.training.tracking: which store a run is logged to."""

from __future__ import annotations

from importlib.metadata import version

from deitkit import job_run
from deitkit.assets.manifest import default_manifest_path
from deitkit.training import tracking

AZUREML_URI = (
    "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/0000/resourceGroups/rg/"
    "providers/Microsoft.MachineLearningServices/workspaces/ws"
)
TRAINING_REQUIREMENTS = (
    default_manifest_path().parent / "environments/training/context/requirements.txt"
)


def _training_pins() -> dict[str, str]:
    # A lock: each entry opens with `name==version \`, its hashes and notes indented below.
    lines = TRAINING_REQUIREMENTS.read_text().splitlines()
    return dict(line.rstrip("\\ ").split("==") for line in lines if line[:1].isalpha())


def test_without_a_uri_runs_go_to_a_sqlite_file_inside_the_output(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_the_training_environment_opens_azure_ml_tracking_uris(monkeypatch, tmp_path):
    # This suite runs in the training environment's pinned set: check that it is, then that
    # mlflow hands an azureml:// URI (what Azure ML sets in every job) to the plugin's store.
    pins = _training_pins()
    for name in ("mlflow-skinny", "azureml-mlflow"):
        assert version(name) == pins[name], f"{name} differs from {TRAINING_REQUIREMENTS}"
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", AZUREML_URI)
    assert tracking.tracking_uri(tmp_path) == AZUREML_URI
    # Look the builder up without calling it: building the store calls Azure.
    builder = _tracking_store_registry.get_store_builder(AZUREML_URI)
    assert (builder.__module__, builder.__name__) == (
        "azureml.mlflow.entry_point_loaders",
        "azureml_store_builder",
    )


def test_an_azureml_uri_without_the_plugin_falls_back_to_the_output(monkeypatch, tmp_path):
    monkeypatch.setattr(job_run, "find_spec", lambda name: None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", AZUREML_URI)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_another_uri_is_used_as_given(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri(tmp_path) == "http://127.0.0.1:5000"
