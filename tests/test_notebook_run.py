"""Tests for deitkit.notebook_run: what the sample notebooks check and prepare before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deitkit import notebook_run
from deitkit.errors import ConfigError

SUBSCRIPTION = "12345678-90ab-cdef-1234-567890abcdef"


def _azure_run(tmp_path):
    return notebook_run.start(
        "demo",
        target="azure",
        work_dir=tmp_path / "w",
        subscription=SUBSCRIPTION,
        resource_group="rg",
        workspace="ws",
        dry_run=True,
    )


def test_a_local_run_gets_a_fresh_marked_work_folder(tmp_path):
    run = notebook_run.start("demo", target="local", work_dir=tmp_path / "w")
    assert run.local and run.workspace_flags == ()
    assert (run.work_dir / notebook_run.MARKER).is_file()
    (run.work_dir / "old.txt").write_text("from the last run")
    again = notebook_run.start("demo", target="local", work_dir=tmp_path / "w")
    assert not (again.work_dir / "old.txt").exists()


def test_an_azure_run_carries_the_checked_workspace(tmp_path):
    run = _azure_run(tmp_path)
    assert run.workspace_flags == (
        "--subscription",
        SUBSCRIPTION,
        "--resource-group",
        "rg",
        "--workspace",
        "ws",
    )
    assert run.dry_run and not run.local


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "cloud"}, "TARGET must be one of local, azure"),
        ({"target": "azure", "subscription": "<SUBSCRIPTION_ID>"}, "placeholder"),
    ],
)
def test_bad_parameters_stop_before_any_folder_is_made(tmp_path, kwargs, message):
    kwargs = {"resource_group": "rg", "workspace": "ws", **kwargs}
    with pytest.raises(ConfigError, match=message):
        notebook_run.start("demo", work_dir=tmp_path / "w", **kwargs)
    assert not (tmp_path / "w").exists()


def test_a_folder_that_is_not_a_samples_is_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="is not a sample's output"):
        notebook_run.start("demo", target="local", work_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_prepare_data_splits_the_digits_into_mltable_folders(tmp_path):
    run = notebook_run.start("demo", target="local", work_dir=tmp_path / "w")
    data = notebook_run.prepare_data(run, "multiclass")
    assert (data.n_train, data.n_validation) == (1437, 360)
    assert (data.train_mltable / "MLTable").is_file()
    with pytest.raises(ConfigError, match="multiclass or multilabel"):
        notebook_run.prepare_data(run, "regression")


def test_a_failing_azure_command_raises_its_own_message(tmp_path):
    run = _azure_run(tmp_path)
    with pytest.raises(notebook_run.AzureCommandError, match="not allowed for inference"):
        run.azure(
            "deploy-online",
            "--endpoint",
            "demo-ep",
            "--model",
            "azureml:m:1",
            "--instance-type",
            "Standard_DS2_v2",
        )


def test_upload_data_registers_the_import_and_returns_its_references(
    tmp_path, colour_folders, monkeypatch
):
    from azure_mock import read_versions

    from deitkit.data.importer import import_dataset

    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("DEITKIT_AZURE_CLIENT_FACTORY", "azure_mock:client_from_environment")
    monkeypatch.setenv("DEITKIT_AZURE_MOCK_DIR", str(tmp_path / "workspace"))
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))
    run = notebook_run.start(
        "demo",
        target="azure",
        work_dir=tmp_path / "w",
        subscription=SUBSCRIPTION,
        resource_group="rg",
        workspace="ws",
    )
    data = import_dataset(colour_folders, run.work_dir / "data")
    assert run.upload_data(data, "colours") == (
        "azureml:colours-training:1",
        "azureml:colours-validation:1",
    )
    assert set(read_versions(tmp_path / "workspace")["data"]) == {
        "colours-images",
        "colours-training",
        "colours-validation",
    }
