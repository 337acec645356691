"""`deitkit assets validate`: exit 0 on the repository, 1 with each problem on its own line."""

from __future__ import annotations

import shutil

import yaml
from click.testing import CliRunner

from deitkit.assets.manifest import default_manifest_path
from deitkit.cli.assets import assets
from deitkit.cli.main import cli
from deitkit.errors import ConfigError

REPO = default_manifest_path().parent


def test_repository_validates_with_exit_0():
    # Through the root group, as `deitkit assets validate` runs: the command checks the
    # components' calls against the CLI it runs under.
    result = CliRunner().invoke(cli, ["assets", "validate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "ok: 3 models, 5 components, 2 environments, 2 endpoints checked"
    )


def test_models_only_root_is_ok(tmp_path):
    manifest = yaml.safe_load((REPO / "assets.yaml").read_text())
    manifest["assets"] = []
    (tmp_path / "assets.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    result = CliRunner().invoke(assets, ["validate", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"ok: 3 models checked under {tmp_path}\n"


def test_problems_are_listed_and_exit_1(tmp_path):
    shutil.copy2(REPO / "assets.yaml", tmp_path / "assets.yaml")
    shutil.copytree(REPO / "endpoints", tmp_path / "endpoints")
    shutil.copytree(REPO / "environments", tmp_path / "environments")
    deployment = tmp_path / "endpoints/online/deployment.yml"
    deployment.write_text(deployment.read_text().replace("Standard_DS3_v2", "Standard_DS1_v2"))
    result = CliRunner().invoke(assets, ["validate", "--root", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(
        line.startswith("endpoints/online/deployment.yml: instance_type: Standard_DS1_v2 is not in")
        for line in lines
    ), result.output
    # The components the index lists are not in this copy: the index check names each folder.
    assert any("assets[0].path: folder components/finetune does not exist" in x for x in lines)
    assert "problem(s)" in lines[-1]


def test_root_without_manifest_is_a_user_error(tmp_path):
    result = CliRunner().invoke(assets, ["validate", "--root", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert "no assets.yaml here" in str(result.exception)
