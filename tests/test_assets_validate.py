"""`validate_assets`: the repository's assets pass; each breakage is named by file and field."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from deitkit.assets.manifest import default_manifest_path
from deitkit.assets.validate import validate_assets
from deitkit.cli.main import cli

REPO = default_manifest_path().parent
# What the asset checks read: the assets, the manifest, and the environments' build context.
COPIED = ("assets.yaml", "pyproject.toml", "README.md")
COPIED_DIRS = ("components", "environments", "endpoints", "src", "locks")


def copy_repo(target: Path) -> Path:
    for name in COPIED:
        shutil.copy2(REPO / name, target / name)
    for name in COPIED_DIRS:
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def problems(root: Path) -> set[str]:
    """The report's problems with `root` taken out of absolute paths, comparable across copies."""
    return {p.replace(f"{root}/", "") for p in validate_assets(root, cli=cli).problems}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> set[str]:
    return problems(copy_repo(tmp_path_factory.mktemp("pristine")))


def edit_yaml(path: Path, change: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_repository_assets_pass():
    report = validate_assets(cli=cli)
    assert report.problems == []
    assert report.ok
    assert report.checked == {"models": 3, "components": 5, "environments": 2, "endpoints": 2}


def _finetune_input(name: str, **change) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        edit_yaml(
            root / "components/finetune/spec.yaml", lambda d: d["inputs"][name].update(change)
        )

    return apply


BREAKAGES = {
    "online SKU outside the inference allow-list": (
        lambda root: edit_text(
            root / "endpoints/online/deployment.yml",
            "instance_type: Standard_DS3_v2",
            "instance_type: Standard_DS2_v2",
        ),
        "endpoints/online/deployment.yml: instance_type: Standard_DS2_v2 is not in "
        "facebook-deit-base-patch16-224's inference_compute_allow_list; closest allowed:",
    ),
    "batch cluster size outside the inference allow-list": (
        lambda root: edit_text(
            root / "endpoints/batch/deployment.yml",
            "compute_size: Standard_DS3_v2",
            "compute_size: Standard_F2s_v2",
        ),
        "endpoints/batch/deployment.yml: tags.compute_size: Standard_F2s_v2 is not in",
    ),
    "unknown VM size": (
        lambda root: edit_text(
            root / "endpoints/online/deployment.yml",
            "instance_type: Standard_DS3_v2",
            "instance_type: Standard_DS3_v9",
        ),
        "endpoints/online/deployment.yml: instance_type: unknown Azure VM size "
        "'Standard_DS3_v9': did you mean",
    ),
    "pipeline fine-tune size outside the finetune allow-list": (
        lambda root: edit_text(
            root / "components/pipeline_multiclass/spec.yaml",
            "default: Standard_NC4as_T4_v3\n    description: VM size of the fine-tuning",
            "default: Standard_DS3_v2\n    description: VM size of the fine-tuning",
        ),
        "components/pipeline_multiclass/spec.yaml: inputs.instance_type_finetune.default: "
        "Standard_DS3_v2 is not in facebook-deit-base-patch16-224's finetune_compute_allow_list",
    ),
    "min-SKU spec that disagrees with the catalog": (
        lambda root: edit_text(
            root / "assets.yaml",
            "inference-min-sku-spec: 2|0|14|28",
            "inference-min-sku-spec: 2|0|16|28",
        ),
        "assets.yaml: models[0].properties.inference-min-sku-spec: 2|0|16|28 != computed 2|0|14|28",
    ),
    "spec.yaml without asset.yaml": (
        lambda root: (root / "components/evaluate/asset.yaml").unlink(),
        "components/evaluate/asset.yaml: missing: every asset folder holds asset.yaml",
    ),
    "asset folder missing from the index": (
        lambda root: shutil.copytree(root / "components/evaluate", root / "components/extra"),
        "components/extra: not in assets.yaml's index",
    ),
    "component flag the CLI lacks": (
        lambda root: edit_text(
            root / "components/finetune/spec.yaml", "--epochs ${{", "--num-epochs ${{"
        ),
        "components/finetune/spec.yaml: command: `deitkit finetune` has no option "
        "--num-epochs; did you mean --epochs?",
    ),
    "subcommand the CLI lacks": (
        lambda root: edit_text(
            root / "components/validate_data/spec.yaml",
            "deitkit data validate ${{",
            "deitkit data check ${{",
        ),
        "components/validate_data/spec.yaml: command: `deitkit data` has no command 'check'",
    ),
    "input of an unknown type": (
        _finetune_input("number_of_epochs", type="integr"),
        "components/finetune/spec.yaml: inputs.number_of_epochs: type: Value 'integr' passed is "
        "not in set ['boolean', 'integer', 'number', 'string']",
    ),
    "default of the wrong type": (
        _finetune_input("number_of_epochs", default="fifteen"),
        "components/finetune/spec.yaml: inputs.number_of_epochs.default: 'fifteen' is not an "
        "integer",
    ),
    "input type the flag cannot take": (
        _finetune_input("number_of_epochs", type="number", default=15.0),
        "components/finetune/spec.yaml: inputs.number_of_epochs: input 'number_of_epochs' "
        "(number) feeds `deitkit finetune` --epochs, which takes integer",
    ),
    "enum value the CLI refuses": (
        _finetune_input("optimizer", enum=["adamw_torch", "adagrad"]),
        "components/finetune/spec.yaml: inputs.optimizer.enum: 'adagrad' for `deitkit finetune` "
        "--optimizer:",
    ),
    "default outside its enum": (
        _finetune_input("learning_rate_scheduler", default="linear"),
        "components/finetune/spec.yaml: inputs.learning_rate_scheduler.default: 'linear' is not "
        "one of",
    ),
    "component default that disagrees with the CLI's": (
        _finetune_input("early_stopping_patience", default=2),
        "components/finetune/spec.yaml: inputs.early_stopping_patience.default: 2, but "
        "`deitkit finetune` --early-stopping-patience defaults to 1",
    ),
    "boolean component default that disagrees with the CLI's": (
        _finetune_input("resume_from_checkpoint", default=False),
        "components/finetune/spec.yaml: inputs.resume_from_checkpoint.default: False, but "
        "`deitkit finetune` --resume defaults to True",
    ),
    "component default where the CLI has none": (
        _finetune_input("image_width", default=-1),
        "components/finetune/spec.yaml: inputs.image_width.default: -1, but `deitkit finetune` "
        "--image-width has no default",
    ),
    "pipeline default that disagrees with its step's": (
        lambda root: edit_yaml(
            root / "components/pipeline_multiclass/spec.yaml",
            lambda d: d["inputs"]["number_of_workers"].update(default=2),
        ),
        "components/pipeline_multiclass/spec.yaml: inputs.number_of_workers.default: 2, but it "
        "feeds jobs.finetune.inputs.number_of_workers, whose component defaults to 0",
    ),
    "pipeline binding to an input it lacks": (
        lambda root: edit_text(
            root / "components/pipeline_multilabel/spec.yaml",
            "warmup_steps: ${{parent.inputs.warmup_steps}}",
            "warmup_steps: ${{parent.inputs.warmup}}",
        ),
        "components/pipeline_multilabel/spec.yaml: jobs.finetune.inputs.warmup_steps: "
        "${{parent.inputs.warmup}}: the pipeline has no input 'warmup'",
    ),
    "pipeline step input the component lacks": (
        lambda root: edit_text(
            root / "components/pipeline_multiclass/spec.yaml",
            "      warmup_steps: ${{parent.inputs.warmup_steps}}",
            "      warmup_step: ${{parent.inputs.warmup_steps}}",
        ),
        "components/pipeline_multiclass/spec.yaml: jobs.finetune.inputs.warmup_step: "
        "deitkit_image_classification_finetune has no input 'warmup_step'",
    ),
    "spec name that differs from the index": (
        lambda root: edit_text(
            root / "components/evaluate/spec.yaml",
            "name: deitkit_image_classification_evaluate",
            "name: deitkit_image_classification_eval",
        ),
        "components/evaluate/spec.yaml: name: 'deitkit_image_classification_eval', but "
        "assets.yaml indexes 'deitkit_image_classification_evaluate'",
    ),
    "empty categories": (
        lambda root: edit_yaml(
            root / "components/evaluate/asset.yaml", lambda d: d.update(categories=[])
        ),
        "components/evaluate/asset.yaml: categories: expected a non-empty list",
    ),
    "environment reference outside the index": (
        lambda root: edit_text(
            root / "components/evaluate/spec.yaml",
            "azureml:deitkit-image-classification-training@latest",
            "azureml:AzureML-sklearn-1.5@latest",
        ),
        "components/evaluate/spec.yaml: environment: 'azureml:AzureML-sklearn-1.5@latest': "
        "expected azureml:NAME@latest",
    ),
    "environment with a fixed version": (
        lambda root: edit_text(
            root / "environments/inference/spec.yaml", "version: auto", "version: 3"
        ),
        "environments/inference/spec.yaml: version: expected auto",
    ),
    "extra index in an environment": (
        lambda root: (root / "environments/training/context/requirements.txt").write_text(
            "--extra-index-url https://example.org/simple\ntorch==2.13.0\n"
        ),
        "environments/training/context/requirements.txt: line 1: extra-index-url is not allowed",
    ),
    "Dockerfile that copies a missing file": (
        lambda root: (root / "README.md").unlink(),
        "environments/training/spec.yaml: build: Dockerfile line 24 copies README.md, which is "
        "not in the build context",
    ),
    "file over 1 MB": (
        lambda root: (root / "endpoints/batch/sample.csv").write_bytes(b"0" * (1024 * 1024 + 1)),
        "endpoints/batch/sample.csv: 1048577 bytes; the limit is 1 MB",
    ),
    "deployment of another endpoint": (
        lambda root: edit_text(
            root / "endpoints/batch/deployment.yml",
            "endpoint_name: deitkit-image-batch",
            "endpoint_name: deitkit-image-online",
        ),
        "endpoints/batch/deployment.yml: endpoint_name: 'deitkit-image-online', but the "
        "endpoint is 'deitkit-image-batch'",
    ),
    "deployment without its scoring script": (
        lambda root: (root / "endpoints/batch/driver.py").unlink(),
        "endpoints/batch/deployment.yml: code_configuration: no scoring script 'driver.py' in",
    ),
    "deployment field azure-ai-ml refuses": (
        lambda root: edit_text(
            root / "endpoints/online/deployment.yml", "instance_count: 1", "instance_count: one"
        ),
        "endpoints/online/deployment.yml: instance_count: Not a valid integer.",
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_each_breakage_is_named_by_file_and_field(case, baseline, tmp_path):
    root = copy_repo(tmp_path)
    breaking, expected = BREAKAGES[case]
    breaking(root)
    new = problems(root) - baseline
    assert any(expected in p for p in new), "\n".join(sorted(new)) or "no new problem"


def test_missing_manifest_is_a_config_error(tmp_path):
    from deitkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no assets\.yaml here"):
        validate_assets(tmp_path, cli=cli)
