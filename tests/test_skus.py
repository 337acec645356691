"""The VM size catalog, min-SKU spec maths and nearest sizes (deitkit.skus)."""

from __future__ import annotations

import pytest

from deitkit.assets.manifest import DEFAULT_MODEL, load_manifest
from deitkit.errors import ConfigError
from deitkit.skus import (
    Purpose,
    closest_sizes,
    format_spec,
    load_catalog,
    min_spec,
    parse_purpose,
    parse_spec,
)


# Figures from the series pages on learn.microsoft.com (vCPUs, GPUs, memory GiB, temp disk GiB).
@pytest.mark.parametrize(
    ("name", "spec", "gpu_type"),
    [
        ("Standard_DS3_v2", "4|0|14|28", None),
        ("Standard_E2s_v3", "2|0|16|32", None),
        ("Standard_E2_v3", "2|0|16|50", None),
        ("Standard_D4a_v4", "4|0|16|100", None),
        ("Standard_D4as_v4", "4|0|16|32", None),
        ("Standard_F8s_v2", "8|0|16|64", None),
        ("Standard_FX4mds", "4|0|84|168", None),
        ("Standard_NC4as_T4_v3", "4|1|28|176", "T4"),
        ("Standard_NC64as_T4_v3", "64|4|440|2816", "T4"),
        ("Standard_NC6s_v3", "6|1|112|736", "V100"),
        ("Standard_NC24ads_A100_v4", "24|1|220|64", "A100"),
        ("Standard_ND96asr_v4", "96|8|900|6000", "A100"),
        ("Standard_ND96amsr_A100_v4", "96|8|1900|6400", "A100"),
        ("Standard_ND40rs_v2", "40|8|672|2948", "V100"),
        ("Standard_DS1_v2", "1|0|3.5|7", None),
    ],
)
def test_catalog_holds_the_published_figures(name, spec, gpu_type):
    size = load_catalog().lookup(name)
    assert size.spec == spec
    assert size.gpu_type == gpu_type
    assert size.source.startswith("https://learn.microsoft.com/azure/virtual-machines/sizes/")


def test_catalog_covers_the_deployment_sizes_and_has_no_duplicates():
    catalog = load_catalog()
    for name in ("Standard_DS3_v2", "Standard_NC4as_T4_v3", "Standard_NC6s_v3"):
        assert name in catalog
    names = [size.name for size in catalog]
    assert len(names) == len(set(n.lower() for n in names)) == len(catalog)


def test_lookup_ignores_case_and_returns_the_canonical_name():
    assert load_catalog().lookup("standard_nc4as_t4_v3").name == "Standard_NC4as_T4_v3"


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("Standard_DS3v2", "Standard_DS3_v2"),
        ("DS3_v2", "Standard_DS3_v2"),
        ("Standard_NC6", "Standard_NC6s_v3"),
        ("Standard_NC4as_T4", "Standard_NC4as_T4_v3"),
    ],
)
def test_unknown_size_names_close_spellings(typo, expected):
    with pytest.raises(ConfigError) as err:
        load_catalog().lookup(typo)
    assert f"unknown Azure VM size {typo!r}" in str(err.value)
    assert "did you mean" in str(err.value) and expected in str(err.value)


def test_unknown_size_without_a_close_spelling_says_where_it_looked():
    with pytest.raises(ConfigError, match=r"not among the \d+ sizes in azure_vm_sizes\.yaml"):
        load_catalog().lookup("Standard_M128")


def test_min_spec_takes_each_field_from_whichever_size_is_smallest():
    # 2 vCPUs from E2s_v3, 14 GiB memory and 28 GiB temp disk from DS3_v2.
    assert min_spec(["Standard_E2s_v3", "Standard_DS3_v2"]) == "2|0|14|28"
    assert min_spec(["Standard_DS3_v2", "Standard_D4a_v4"]) == "4|0|14|28"
    assert min_spec(["Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4"]) == "4|1|28|64"
    assert min_spec(["Standard_NC4as_T4_v3", "Standard_NC96ads_A100_v4"]) == "4|1|28|176"
    assert min_spec(["Standard_DS1_v2"]) == "1|0|3.5|7"


def test_min_spec_refuses_empty_and_unknown_lists():
    with pytest.raises(ConfigError, match="empty"):
        min_spec([])
    with pytest.raises(ConfigError, match="Standard_DS3_v2"):
        min_spec(["Standard_DS3v2"])


def test_spec_format_and_parse():
    assert format_spec(2, 0, 14.0, 28) == "2|0|14|28"
    assert format_spec(1, 0, 3.5, 7) == "1|0|3.5|7"
    assert parse_spec("4|1|28|176") == (4, 1, 28, 176)
    for bad in ("4|1|28", "4|1|x|176", "4|-1|28|176", ""):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_closest_sizes_stay_on_cpu_for_a_cpu_size_and_on_gpu_for_a_gpu_size():
    catalog = load_catalog()
    manifest = load_manifest()
    deit = manifest.model(DEFAULT_MODEL)
    inference = [catalog.lookup(n) for n in deit.allow_list(Purpose.INFERENCE)]
    finetune = [catalog.lookup(n) for n in deit.allow_list(Purpose.FINETUNE)]

    near = closest_sizes(catalog.lookup("Standard_DS2_v2"), inference, n=3)
    assert [s.name for s in near] == ["Standard_E2s_v3", "Standard_DS3_v2", "Standard_D4a_v4"]
    assert all(s.gpus == 0 for s in near)

    near = closest_sizes(catalog.lookup("Standard_NC24rs_v3"), inference, n=2)
    assert near[0].name == "Standard_NC24s_v3" and near[1].gpus > 0

    near = closest_sizes(catalog.lookup("Standard_DS3_v2"), finetune, n=1)
    assert near[0].name == "Standard_NC4as_T4_v3"


def test_parse_purpose():
    assert parse_purpose("evaluation") is Purpose.EVALUATION
    assert Purpose.FINETUNE.allow_list_tag == "finetune_compute_allow_list"
    assert Purpose.INFERENCE.min_spec_property == "inference-min-sku-spec"
    assert Purpose.EVALUATION.recommended_property == "evaluation-recommended-sku"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("series: [unclosed", "cannot read the VM size catalog"),
        ("[]", "expected a mapping with a 'series' list"),
        ("series: [{name: X, sizes: {A: {memory_gib: 1, temp_disk_gib: 1}}}]", "A.vcpus"),
        (
            "series: [{name: X, sizes: {A: {vcpus: 1, memory_gib: 0, temp_disk_gib: 1}}}]",
            "A.memory_gib",
        ),
        (
            "series: [{name: X, sizes: {A: {vcpus: 1, memory_gib: 1, temp_disk_gib: 1, gpus: 1}}}]",
            "gpu.type",
        ),
        (
            "series: [{name: X, sizes: {A: {vcpus: 1, memory_gib: 1, temp_disk_gib: 1},"
            " a: {vcpus: 1, memory_gib: 1, temp_disk_gib: 1}}}]",
            "listed twice",
        ),
    ],
)
def test_bad_catalog_files_name_the_file_and_entry(tmp_path, text, message):
    path = tmp_path / "sizes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
