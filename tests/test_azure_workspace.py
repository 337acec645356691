"""Workspace resolution: flags, config.json (both forms), placeholders refused before use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deitkit.azure.workspace import Workspace, connect, find_config, resolve_workspace
from deitkit.errors import ConfigError

SUB = "12345678-90ab-cdef-1234-567890abcdef"


def _config(folder: Path, **values: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def test_flags_alone_name_the_workspace(tmp_path: Path):
    ws = resolve_workspace(
        subscription=SUB, resource_group="rg", workspace="ws", search_from=tmp_path
    )
    assert ws == Workspace(SUB, "rg", "ws", "flags")


def test_config_json_is_found_walking_up_and_flags_override_it(tmp_path: Path):
    path = _config(
        tmp_path / ".azureml", subscription_id=SUB, resource_group="rg", workspace_name="a"
    )
    nested = tmp_path / "project" / "src"
    nested.mkdir(parents=True)
    assert find_config(nested) == path
    ws = resolve_workspace(workspace="b", search_from=nested)
    assert (ws.subscription_id, ws.resource_group, ws.workspace_name) == (SUB, "rg", "b")
    assert ws.source == str(path)


def test_a_model_config_json_is_passed_over(tmp_path: Path):
    workspace = _config(tmp_path, subscription_id=SUB, resource_group="rg", workspace_name="ws")
    _config(tmp_path / "checkpoint", model_type="deit", num_labels=3)  # a Hugging Face config
    assert find_config(tmp_path / "checkpoint") == workspace


def test_scope_form_is_read(tmp_path: Path):
    scope = (
        f"/subscriptions/{SUB}/resourceGroups/my-rg/providers/"
        "Microsoft.MachineLearningServices/workspaces/my-ws"
    )
    path = _config(tmp_path, Scope=scope)
    ws = resolve_workspace(config=path)
    assert (ws.subscription_id, ws.resource_group, ws.workspace_name) == (SUB, "my-rg", "my-ws")


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"subscription_id": "<SUBSCRIPTION_ID>"}, r"subscription_id is a placeholder \('<SUB"),
        ({"resource_group": "{{resource_group}}"}, "resource_group is a placeholder"),
        ({"workspace_name": "your-workspace-name"}, "workspace_name is a placeholder"),
        ({"subscription_id": "my-subscription"}, "is not a subscription id"),
    ],
)
def test_placeholders_in_config_are_refused_naming_the_file(tmp_path, values, expected):
    good = {"subscription_id": SUB, "resource_group": "rg", "workspace_name": "ws"}
    path = _config(tmp_path, **{**good, **values})
    with pytest.raises(ConfigError, match=expected) as err:
        resolve_workspace(config=path)
    assert str(path) in str(err.value)


def test_placeholder_flag_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"--subscription is a placeholder"):
        resolve_workspace(
            subscription="<SUBSCRIPTION_ID>",
            resource_group="rg",
            workspace="ws",
            search_from=tmp_path,
        )


def test_missing_values_say_how_to_supply_them(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"missing --resource-group, --workspace.*config\.json"):
        resolve_workspace(subscription=SUB, search_from=tmp_path)


def test_malformed_config_is_refused(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the workspace config"):
        resolve_workspace(config=path)
    path.write_text(json.dumps({"Scope": "/subscriptions/x"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a workspace ARM id"):
        resolve_workspace(config=path)


class _NoTokenCredential:
    """A credential that fails the test if anything asks it for a token."""

    def get_token(self, *scopes, **kwargs):
        raise AssertionError(f"token requested for {scopes}")


def test_connect_builds_an_mlclient_without_asking_for_a_token():
    client = connect(Workspace(SUB, "rg", "ws"), credential=_NoTokenCredential())
    assert type(client).__name__ == "MLClient"
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == (
        SUB,
        "rg",
        "ws",
    )


def test_the_offline_test_hook_is_used_only_when_set(monkeypatch, tmp_path, capsys):
    from azure_mock import MockMLClient

    from deitkit.azure.workspace import CLIENT_FACTORY_ENV

    workspace = Workspace(SUB, "rg", "ws")
    monkeypatch.delenv(CLIENT_FACTORY_ENV, raising=False)
    assert type(connect(workspace, credential=_NoTokenCredential())).__name__ == "MLClient"
    monkeypatch.setenv(CLIENT_FACTORY_ENV, "azure_mock:client_from_environment")
    monkeypatch.setenv("DEITKIT_AZURE_MOCK_DIR", str(tmp_path / "mock"))
    client = connect(workspace)
    assert isinstance(client, MockMLClient) and client.workspace_name == "ws"
    assert f"Azure ML calls go to azure_mock:client_from_environment ({CLIENT_FACTORY_ENV})" in (
        capsys.readouterr().err
    )
    for value, message in [
        ("azure_mock", "expected MODULE:FUNCTION"),
        ("no_such_module:f", "No module named 'no_such_module'"),
        ("azure_mock:nothing", "has no attribute 'nothing'"),
    ]:
        monkeypatch.setenv(CLIENT_FACTORY_ENV, value)
        with pytest.raises(ConfigError, match=f"{CLIENT_FACTORY_ENV}=.*{message}.*unset it"):
            connect(workspace)
