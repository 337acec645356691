"""The SKU gate (deitkit.assets.sku_gate): allowed sizes pass, others get the closest allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deitkit.assets.manifest import DEFAULT_MODEL, load_manifest
from deitkit.assets.sku_gate import SkuNotAllowedError, check_sku
from deitkit.errors import ConfigError
from deitkit.skus import Purpose

REPO_MANIFEST = load_manifest()


def _manifest(tmp_path: Path, inference: list[str], gpu: list[str]) -> Path:
    """A one-model manifest whose lists are `inference` and (evaluation, finetune) `gpu`."""
    doc = {
        "models": [
            {
                "name": "tiny-model",
                "version": 1,
                "tags": {
                    "task": "image-classification",
                    "license": "mit",
                    "inference_compute_allow_list": inference,
                    "evaluation_compute_allow_list": gpu,
                    "finetune_compute_allow_list": gpu,
                },
                "properties": {},
            }
        ]
    }
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_check_sku_allows_a_listed_size():
    result = check_sku("Standard_DS3_v2", "inference", manifest=REPO_MANIFEST)
    assert result.allowed and result.model == DEFAULT_MODEL
    assert result.min_spec == "2|0|14|28" and result.alternatives == ()
    result.raise_if_denied()  # no error
    assert "Standard_DS3_v2 is allowed for inference" in result.summary()


def test_check_sku_denies_an_unlisted_size_with_the_closest_alternatives():
    result = check_sku("Standard_DS3_v2", Purpose.FINETUNE, manifest=REPO_MANIFEST)
    assert not result.allowed and result.min_spec == "4|1|28|176"
    assert result.alternatives[0].name == "Standard_NC4as_T4_v3"
    with pytest.raises(SkuNotAllowedError) as err:
        result.raise_if_denied()
    assert err.value.check is result
    assert "not allowed for finetune" in str(err.value) and "Standard_NC4as_T4_v3" in str(err.value)


def test_check_sku_follows_the_model_beit_omits_e2s_v3():
    assert check_sku("Standard_E2s_v3", "inference", manifest=REPO_MANIFEST).allowed
    beit = check_sku(
        "Standard_E2s_v3",
        "inference",
        model="microsoft-beit-base-patch16-224-pt22k-ft22k",
        manifest=REPO_MANIFEST,
    )
    assert not beit.allowed and beit.min_spec == "4|0|14|28"
    assert [a.name for a in beit.alternatives][:2] == ["Standard_D4a_v4", "Standard_D4as_v4"]


def test_check_sku_reads_a_given_manifest(tmp_path):
    manifest = load_manifest(_manifest(tmp_path, ["Standard_DS3_v2"], ["Standard_NC6s_v3"]))
    assert check_sku("Standard_DS3_v2", "inference", model="tiny-model", manifest=manifest).allowed
    denied = check_sku("Standard_NC4as_T4_v3", "evaluation", model="tiny-model", manifest=manifest)
    assert not denied.allowed and [a.name for a in denied.alternatives] == ["Standard_NC6s_v3"]


def test_check_sku_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="did you mean Standard_DS3_v2"):
        check_sku("Standard_DS3v2", "inference", manifest=REPO_MANIFEST)
    with pytest.raises(ConfigError, match=r"no model asset named 'nope'; known: facebook-deit"):
        check_sku("Standard_DS3_v2", "inference", model="nope", manifest=REPO_MANIFEST)
    with pytest.raises(
        ConfigError, match=r"unknown purpose 'training'; expected one of: inference, evaluation"
    ):
        check_sku("Standard_DS3_v2", "training", manifest=REPO_MANIFEST)
    manifest = load_manifest(_manifest(tmp_path, ["Standard_DS3v2"], ["Standard_NC6s_v3"]))
    with pytest.raises(ConfigError, match=r"models\[0\]\.tags\.inference_compute_allow_list"):
        check_sku("Standard_DS3_v2", "inference", model="tiny-model", manifest=manifest)
