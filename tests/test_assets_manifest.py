"""assets.yaml: the model assets as the card states them, the SKU invariants, and the index."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deitkit.assets.manifest import (
    check_asset_index,
    check_model_assets,
    default_manifest_path,
    load_manifest,
)
from deitkit.errors import ConfigError
from deitkit.skus import Purpose, min_spec

REPO_MANIFEST = Path(__file__).resolve().parents[1] / "assets.yaml"
DEIT = "facebook-deit-base-patch16-224"
VIT = "google-vit-base-patch16-224"
BEIT = "microsoft-beit-base-patch16-224-pt22k-ft22k"

# Copied from the facebook-deit-base-patch16-224 model card (Azure ML registry, version 15).
CARD_INFERENCE = [
    "Standard_DS3_v2", "Standard_D4a_v4", "Standard_D4as_v4", "Standard_DS4_v2",
    "Standard_D8a_v4", "Standard_D8as_v4", "Standard_DS5_v2", "Standard_D16a_v4",
    "Standard_D16as_v4", "Standard_D32a_v4", "Standard_D32as_v4", "Standard_D48a_v4",
    "Standard_D48as_v4", "Standard_D64a_v4", "Standard_D64as_v4", "Standard_D96a_v4",
    "Standard_D96as_v4", "Standard_FX4mds", "Standard_F8s_v2", "Standard_FX12mds",
    "Standard_F16s_v2", "Standard_F32s_v2", "Standard_F48s_v2", "Standard_F64s_v2",
    "Standard_F72s_v2", "Standard_FX24mds", "Standard_FX36mds", "Standard_FX48mds",
    "Standard_E2s_v3", "Standard_E4s_v3", "Standard_E8s_v3", "Standard_E16s_v3",
    "Standard_E32s_v3", "Standard_E48s_v3", "Standard_E64s_v3", "Standard_NC4as_T4_v3",
    "Standard_NC6s_v3", "Standard_NC8as_T4_v3", "Standard_NC12s_v3", "Standard_NC16as_T4_v3",
    "Standard_NC24s_v3", "Standard_NC64as_T4_v3", "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4", "Standard_ND96asr_v4",
    "Standard_ND96amsr_A100_v4", "Standard_ND40rs_v2",
]  # fmt: skip
CARD_EVALUATION = CARD_FINETUNE = [
    "Standard_NC4as_T4_v3", "Standard_NC6s_v3", "Standard_NC8as_T4_v3", "Standard_NC12s_v3",
    "Standard_NC16as_T4_v3", "Standard_NC24s_v3", "Standard_NC64as_T4_v3",
    "Standard_NC96ads_A100_v4", "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4",
    "Standard_ND40rs_v2",
]  # fmt: skip
CARD_SPECS = {"inference": "2|0|14|28", "evaluation": "4|1|28|176", "finetune": "4|1|28|176"}


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(REPO_MANIFEST)


def _mutated(tmp_path: Path, change) -> Path:
    """A copy of the repository's assets.yaml with `change(doc)` applied, as tmp/assets.yaml."""
    doc = copy.deepcopy(yaml.safe_load(REPO_MANIFEST.read_text()))
    change(doc)
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_repository_manifest_is_the_default_and_has_no_problems(manifest):
    assert default_manifest_path() == REPO_MANIFEST
    assert [m.name for m in manifest.models] == [DEIT, VIT, BEIT]
    assert check_model_assets(manifest) == []
    assert check_asset_index(manifest) == []


def test_deit_allow_lists_are_the_cards_exactly(manifest):
    deit = manifest.model(DEIT)
    assert len(CARD_INFERENCE) == 48 and len(CARD_EVALUATION) == 11
    assert list(deit.allow_list(Purpose.INFERENCE)) == CARD_INFERENCE
    assert list(deit.allow_list(Purpose.EVALUATION)) == CARD_EVALUATION
    assert list(deit.allow_list(Purpose.FINETUNE)) == CARD_FINETUNE
    # The card's recommended-SKU strings list the same names in the same order.
    assert list(deit.recommended(Purpose.INFERENCE)) == CARD_INFERENCE
    assert list(deit.recommended(Purpose.EVALUATION)) == CARD_EVALUATION
    assert list(deit.recommended(Purpose.FINETUNE)) == CARD_FINETUNE


def test_deit_tags_and_properties_are_the_cards(manifest):
    deit = manifest.model(DEIT)
    assert deit.version == "15"
    assert {k: deit.tags[k] for k in ("task", "license", "author", "huggingface_model_id")} == {
        "task": "image-classification",
        "license": "apache-2.0",
        "author": "facebook",
        "huggingface_model_id": "facebook/deit-base-patch16-224",
    }
    assert deit.tags["training_dataset"] == "imagenet-1k"
    assert "SharedComputeCapacityEnabled" in deit.tags
    assert deit.tags["model_specific_defaults"] == {"apply_deepspeed": "true", "apply_ort": "true"}
    assert deit.properties["SharedComputeCapacityEnabled"] == "True"
    assert deit.properties["SHA"] == "fb2c78a54a5637dec350432794f7b93e31f910c9"
    assert deit.properties["finetuning-tasks"] == "image-classification"
    for purpose, spec in CARD_SPECS.items():
        assert deit.properties[f"{purpose}-min-sku-spec"] == spec


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (DEIT, CARD_SPECS),
        (VIT, CARD_SPECS),
        (BEIT, {**CARD_SPECS, "inference": "4|0|14|28"}),
    ],
)
def test_computed_min_specs_equal_the_cards(manifest, model, expected):
    asset = manifest.model(model)
    for purpose in Purpose:
        assert min_spec(asset.allow_list(purpose)) == expected[purpose.value]
        assert asset.min_sku_spec(purpose) == expected[purpose.value]


def test_siblings_share_deits_lists_except_beit_without_e2s_v3(manifest):
    vit, beit = manifest.model(VIT), manifest.model(BEIT)
    assert list(vit.allow_list(Purpose.INFERENCE)) == CARD_INFERENCE
    assert list(beit.allow_list(Purpose.INFERENCE)) == [
        s for s in CARD_INFERENCE if s != "Standard_E2s_v3"
    ]
    for asset in (vit, beit):
        assert list(asset.allow_list(Purpose.FINETUNE)) == CARD_FINETUNE
        assert list(asset.allow_list(Purpose.EVALUATION)) == CARD_EVALUATION


def _set(*keys, value):
    def change(doc):
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _drop(*keys):
    def change(doc):
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def _edit_list(*keys, edit):
    def change(doc):
        target = doc
        for key in keys:
            target = target[key]
        edit(target)

    return change


M0 = ("models", 0)
PROPS = "assets.yaml: models[0].properties."
TAGS = "assets.yaml: models[0].tags."


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _set(*M0, "properties", "inference-min-sku-spec", value="2|0|16|28"),
            [PROPS + "inference-min-sku-spec: 2|0|16|28 != computed 2|0|14|28"],
        ),
        (
            _set(*M0, "properties", "finetune-min-sku-spec", value="4|1|28"),
            [PROPS + "finetune-min-sku-spec: expected cpus|gpus|memoryGB|diskGB"],
        ),
        (
            _drop(*M0, "properties", "evaluation-min-sku-spec"),
            [PROPS + "evaluation-min-sku-spec: missing"],
        ),
        (
            _set(
                *M0,
                "properties",
                "evaluation-recommended-sku",
                value=", ".join(CARD_EVALUATION[:-1]),
            ),
            [
                PROPS + "evaluation-recommended-sku: differs from "
                "evaluation_compute_allow_list (missing from it: Standard_ND40rs_v2)"
            ],
        ),
        (
            _set(
                *M0,
                "properties",
                "finetune-recommended-sku",
                value=", ".join([*CARD_FINETUNE, "Standard_DS3_v2"]),
            ),
            [
                PROPS + "finetune-recommended-sku: differs from "
                "finetune_compute_allow_list (not in the allow-list: Standard_DS3_v2)"
            ],
        ),
        (
            _drop(*M0, "properties", "inference-recommended-sku"),
            [PROPS + "inference-recommended-sku: missing"],
        ),
        (
            _edit_list(
                *M0,
                "tags",
                "inference_compute_allow_list",
                edit=lambda skus: skus.__setitem__(0, "Standard_DS3v2"),
            ),
            [
                TAGS + "inference_compute_allow_list[0]: Standard_DS3v2 is not in "
                "the VM size catalog (did you mean Standard_DS3_v2",
                PROPS + "inference-recommended-sku: differs",
            ],
        ),
        (
            # Dropping E2s_v3 from the list without updating the spec (and the recommended list).
            _edit_list(
                *M0,
                "tags",
                "inference_compute_allow_list",
                edit=lambda skus: skus.remove("Standard_E2s_v3"),
            ),
            [
                PROPS + "inference-min-sku-spec: 2|0|14|28 != computed 4|0|14|28",
                PROPS + "inference-recommended-sku: differs from "
                "inference_compute_allow_list (not in the allow-list: Standard_E2s_v3)",
            ],
        ),
        (
            _edit_list(
                *M0,
                "tags",
                "evaluation_compute_allow_list",
                edit=lambda skus: skus.append("Standard_NC6s_v3"),
            ),
            [TAGS + "evaluation_compute_allow_list: Standard_NC6s_v3 is listed 2 times"],
        ),
        (
            _set(*M0, "tags", "finetune_compute_allow_list", value="Standard_NC6s_v3"),
            [TAGS + "finetune_compute_allow_list: expected a non-empty list"],
        ),
        (
            _drop(*M0, "tags", "task"),
            [TAGS + "task: required tag is missing or empty"],
        ),
        (
            _set(*M0, "tags", "task", value="object-detection"),
            [TAGS + "task: 'object-detection' is not one of"],
        ),
        (
            _set(*M0, "tags", "model_specific_defaults", value={"apply_deepspeed": True}),
            [TAGS + "model_specific_defaults: expected a mapping of strings"],
        ),
        (
            _set(*M0, "name", value="9-starts-with-a-digit"),
            ["assets.yaml: models[0].name: '9-starts-with-a-digit' does not match"],
        ),
        (
            _set("models", 1, "name", value=DEIT),
            [f"assets.yaml: models: '{DEIT}' is listed 2 times"],
        ),
    ],
)
def test_each_broken_invariant_is_reported_with_file_and_field(tmp_path, change, expected):
    problems = check_model_assets(load_manifest(_mutated(tmp_path, change)))
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(f"{tmp_path}/{start}"), problem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "the top level: expected a mapping, got list"),
        ("modles: []\n", "the top level: unknown key 'modles'"),
        ("models: []\n", "models: expected a non-empty list"),
        ("models: [{version: 1}]\n", "models[0].name: expected a non-empty string"),
        ("models: [{name: m, version: 1, propertis: {}}]\n", "models[0]: unknown key 'propertis'"),
        ("models: [{name: m, version: 1, tags: [a]}]\n", "models[0].tags: expected a mapping"),
        (
            "models: [{name: m, version: 1}]\nassets: [{type: component, name: c, version: 1}]\n",
            "assets[0].path: expected a non-empty string",
        ),
    ],
)
def test_unloadable_manifests_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "assets.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_missing_manifest_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the asset manifest"):
        load_manifest(tmp_path / "absent.yaml")


def test_index_lists_every_planned_component_environment_and_endpoint(manifest):
    paths = {(a.type, a.path) for a in manifest.assets}
    assert paths == {
        ("component", "components/finetune"),
        ("component", "components/evaluate"),
        ("component", "components/validate_data"),
        ("component", "components/pipeline_multiclass"),
        ("component", "components/pipeline_multilabel"),
        ("environment", "environments/training"),
        ("environment", "environments/inference"),
        ("endpoint", "endpoints/online"),
        ("endpoint", "endpoints/batch"),
    }
    assert all(a.version == "auto" for a in manifest.of_type("environment"))
    assert all(a.version for a in manifest.assets)


def test_index_problems_name_the_entry_and_field(tmp_path, manifest):
    entries = [
        {"type": "component", "name": "ok_component", "version": "1.0.0", "path": "components/ok"},
        {"type": "component", "name": "ok_component", "version": "1.0.0", "path": "components/ok"},
        {"type": "dataset", "name": "data", "version": "1", "path": "data"},
        {"type": "component", "name": "Upper_Case", "version": "1", "path": "components/u"},
        {"type": "endpoint", "name": "under_score", "version": "1", "path": "endpoints/x"},
        {"type": "environment", "name": "env", "version": "1 0", "path": "/abs/env"},
        {"type": "environment", "name": "env2", "version": "auto", "path": "../outside"},
    ]
    path = _mutated(tmp_path, _set("assets", value=entries))
    (tmp_path / "components" / "ok").mkdir(parents=True)
    problems = check_asset_index(load_manifest(path), root=tmp_path)
    where = f"{path}: assets"
    assert problems == [
        f"{where}: component 'ok_component' is listed 2 times",
        f"{where}[2].type: 'dataset' is not one of ['component', 'environment', 'endpoint']",
        f"{where}[2].path: folder data does not exist under {tmp_path}",
        f"{where}[3].name: 'Upper_Case' does not match ^[a-z][a-z0-9_.-]{{0,254}}$",
        f"{where}[3].path: folder components/u does not exist under {tmp_path}",
        f"{where}[4].name: 'under_score' does not match ^[a-zA-Z][a-zA-Z0-9-]{{2,31}}$",
        f"{where}[4].path: folder endpoints/x does not exist under {tmp_path}",
        f"{where}[5].version: '1 0' is not a version string",
        f"{where}[5].path: '/abs/env' must be a relative path inside the repo",
        f"{where}[6].path: '../outside' must be a relative path inside the repo",
    ]


def test_the_planned_folders_are_reported_missing_under_an_empty_root(tmp_path, manifest):
    problems = check_asset_index(manifest, root=tmp_path)
    assert len(problems) == len(manifest.assets)
    assert all("does not exist under" in p for p in problems)
