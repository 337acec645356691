"""The Azure calls: cluster reuse, Azure errors as one-line messages, batch inputs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure_mock import MockMLClient

from deitkit.azure import submit
from deitkit.azure.entities import compute_cluster
from deitkit.errors import ConfigError


def test_existing_cluster_of_the_gated_size_is_reused():
    existing = SimpleNamespace(name="gpu", size="STANDARD_NC6S_V3")  # Azure may change case
    client = MockMLClient(gpu=existing)
    assert (
        submit.ensure_compute(client, compute_cluster("gpu", size="Standard_NC6s_v3")) is existing
    )
    assert client.writes() == []


def test_missing_cluster_is_created_as_given():
    client = MockMLClient()
    submit.ensure_compute(client, compute_cluster("gpu", size="Standard_NC6s_v3", max_instances=2))
    (call,) = client.writes()
    assert (call.entity.name, call.entity.size, call.entity.max_instances) == (
        "gpu",
        "Standard_NC6s_v3",
        2,
    )


def test_sign_in_failure_says_how_to_sign_in():
    expected = r"register model m: cannot sign in.*az login"
    with (
        pytest.raises(submit.AzureCallError, match=expected),
        submit.azure_call("register model m"),
    ):
        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")


def test_azure_errors_become_one_line_naming_the_call():
    with (
        pytest.raises(submit.AzureCallError) as err,
        submit.azure_call("create online endpoint deit-ep"),
    ):
        raise HttpResponseError("(QuotaExceeded) Not enough quota\nCode: QuotaExceeded")
    assert str(err.value) == "create online endpoint deit-ep: (QuotaExceeded) Not enough quota"


@pytest.mark.parametrize(
    "uri, kind",
    [
        ("azureml://datastores/workspaceblobstore/paths/fridge/images.csv", "uri_file"),
        ("azureml:fridge-images:1", "uri_folder"),
        ("https://example.blob.core.windows.net/images/", "uri_folder"),
    ],
)
def test_batch_input_from_a_uri(uri, kind):
    data = submit.batch_input(uri)
    assert (data.type, data.path) == (kind, uri)


def test_missing_inputs_are_refused_before_any_call(tmp_path):
    with pytest.raises(ConfigError, match=r"--input .*: no such file or folder"):
        submit.batch_input(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"--request .*: cannot read"):
        submit.read_request(tmp_path / "missing.json")
