"""`deitkit sku check`: exit 0 when allowed, 1 with the closest allowed sizes, errors for typos."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from deitkit.cli.sku import sku
from deitkit.errors import ConfigError


def _run(*args: str):
    return CliRunner().invoke(sku, list(args))


def test_allowed_size_exits_0_with_one_line():
    result = _run("check", "Standard_DS3_v2", "--for", "inference")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Standard_DS3_v2 is allowed for inference of ")
    assert "facebook-deit-base-patch16-224" in result.output  # the default model
    assert len(result.output.strip().splitlines()) == 1


def test_gpu_size_is_allowed_for_finetune():
    result = _run("check", "Standard_NC4as_T4_v3", "--for", "finetune")
    assert result.exit_code == 0 and "allowed for finetune" in result.output


def test_disallowed_size_exits_1_naming_the_closest_allowed_sizes():
    result = _run("check", "Standard_DS3_v2", "--for", "finetune")
    assert result.exit_code == 1
    described = "Standard_DS3_v2 (4 vCPUs, no GPU, 14 GiB memory, 28 GiB temp disk)"
    assert result.output.startswith(f"{described} is not allowed for finetune")
    assert "4|1|28|176" in result.output
    lines = result.output.splitlines()
    closest = lines[lines.index("closest allowed sizes:") + 1 :]
    assert [line.split()[0] for line in closest] == [
        "Standard_NC4as_T4_v3",
        "Standard_NC8as_T4_v3",
        "Standard_NC6s_v3",
    ]


def test_model_option_picks_the_models_allow_list():
    args = ("check", "Standard_E2s_v3", "--for", "inference")
    assert _run(*args).exit_code == 0
    beit = _run(*args, "--model", "microsoft-beit-base-patch16-224-pt22k-ft22k")
    assert beit.exit_code == 1 and "Standard_D4a_v4" in beit.output


def test_unknown_size_raises_a_config_error_naming_close_spellings():
    result = _run("check", "Standard_DS3v2", "--for", "inference")
    # The main `deitkit` group turns DeitkitError into `error: ...` and exit code 2.
    assert isinstance(result.exception, ConfigError)
    assert "did you mean Standard_DS3_v2" in str(result.exception)


def test_unknown_model_raises_a_config_error():
    result = _run("check", "Standard_DS3_v2", "--for", "inference", "--model", "nope")
    assert isinstance(result.exception, ConfigError) and "nope" in str(result.exception)


def test_bad_purpose_is_a_usage_error():
    result = _run("check", "Standard_DS3_v2", "--for", "training")
    assert result.exit_code == 2 and "inference" in result.output


def test_manifest_option_reads_another_manifest(tmp_path):
    path = tmp_path / "assets.yaml"
    gpu = ["Standard_NC6s_v3"]
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "facebook-deit-base-patch16-224",
                        "version": 1,
                        "tags": {
                            "inference_compute_allow_list": ["Standard_DS4_v2"],
                            "evaluation_compute_allow_list": gpu,
                            "finetune_compute_allow_list": gpu,
                        },
                    }
                ]
            }
        )
    )
    result = _run("check", "Standard_DS3_v2", "--for", "inference", "--manifest", str(path))
    assert result.exit_code == 1 and "Standard_DS4_v2" in result.output
    result = _run("check", "Standard_DS4_v2", "--for", "inference", "--manifest", str(path))
    assert result.exit_code == 0
