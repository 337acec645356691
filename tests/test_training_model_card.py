"""The model card a run writes (training/model_card.py), and its log outside a terminal.

One tiny `deitkit finetune` runs as a CI or Azure ML job runs it: its stderr a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import save_tiny_checkpoint, write_colour_folders
from huggingface_hub import ModelCard

from deitkit.metrics import METRIC_NAMES
from deitkit.packaging import CARD_FILE
from deitkit.tasks import Task
from deitkit.training.model_card import base_license, base_model

EPOCHS = 2
SRC = Path(__file__).parents[1] / "src"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    """(OUT, stderr) of `deitkit finetune` on a tiny DeiT whose card says apache-2.0."""
    root = tmp_path_factory.mktemp("card")
    base = save_tiny_checkpoint(root / "tiny-deit")
    (base / CARD_FILE).write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    data = write_colour_folders(root / "colours")
    out = root / "out"
    log = root / "stderr.log"
    args = ["--model", str(base), "--train", str(data), "--output", str(out)]
    args += ["--epochs", str(EPOCHS), "--train-batch-size", "8", "--learning-rate", "1e-3"]
    # The worktree's deitkit, whatever the environment has installed.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "deitkit.cli.main", "finetune", *args, "--no-augmentations"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, log.read_text()[-3000:]
    assert "\r" not in done.stdout
    return out, log.read_text()


def test_a_log_file_gets_lines_not_bars(run):
    _, log = run
    assert "\r" not in log
    lines = log.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{e}.00/{EPOCHS}" for e in (1, 2)]
    assert sum(line.startswith("best checkpoint (step ") for line in lines) == 1
    assert len(lines) < 60, log


def test_the_card_loads_and_its_model_index_is_the_validation_metrics(run):
    out, _ = run
    card = ModelCard.load(out / "model" / CARD_FILE)
    metrics = json.loads((out / "metrics.json").read_text())
    results = card.data.eval_results
    indexed = {r.metric_name: r.metric_value for r in results}
    expected = {
        name: metrics[f"eval_{name}"]
        for name in METRIC_NAMES[Task.MULTICLASS]
        if f"eval_{name}" in metrics
    }
    assert len(indexed) == len(results) and "accuracy" in indexed
    assert indexed == pytest.approx(expected, rel=0, abs=0, nan_ok=True)  # exactly
    assert {r.task_type for r in results} == {"image-classification"}
    assert {(r.dataset_name, r.dataset_split) for r in results} == {("colours", "validation")}
    assert card.data.model_name == "tiny-deit-finetuned-colours"


def test_the_card_names_license_tags_hyperparameters_results_and_versions(run):
    out, _ = run
    card = ModelCard.load(out / "model" / CARD_FILE)
    assert card.data.license == "apache-2.0"  # from the base model's own card
    assert card.data.base_model is None  # a local folder with no Hub id
    assert {"image-classification", "deit", "deitkit"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "image-classification"
    text = card.text
    hyperparameters = [
        "- learning_rate: 0.001",
        "- train_batch_size: 8",
        "- seed: 42",
        f"- num_epochs: {EPOCHS}",
        "- precision: fp32",
        "- lr_scheduler_type: cosine",
    ]
    for line in hyperparameters:
        assert line in text, line
    assert "adamw_torch_fused with betas=(0.9,0.999)" in text
    header = "| Training Loss | Epoch | Step | Validation Loss | Accuracy |"
    table = text[text.index(header) :].splitlines()
    assert len([row for row in table[2:] if row.startswith("|")]) == EPOCHS
    for package in ("Transformers", "Pytorch", "deitkit"):
        assert f"\n- {package} " in text


def test_the_package_carries_the_card_in_its_checkpoint_and_at_its_root(run):
    out, _ = run
    card = (out / "model" / CARD_FILE).read_text()
    package = out / "mlflow_model"
    assert (package / CARD_FILE).read_text() == card
    assert (package / "artifacts" / "checkpoint" / CARD_FILE).read_text() == card


def test_base_model_of_each_kind_of_reference(tmp_path):
    snapshot = tmp_path / "hub" / "models--facebook--deit-tiny-patch16-224" / "snapshots" / "abc"
    save_tiny_checkpoint(snapshot)
    assert base_model("facebook/deit-tiny-patch16-224") == "facebook/deit-tiny-patch16-224"
    assert base_model(str(snapshot)) == "facebook/deit-tiny-patch16-224"
    assert base_model("scratch:deit-tiny") is None
    assert base_model(str(save_tiny_checkpoint(tmp_path / "mine"))) is None


def test_no_license_is_guessed(tmp_path):
    assert base_license("scratch:deit-tiny") is None
    assert base_license(str(save_tiny_checkpoint(tmp_path / "mine"))) is None
    # A hub id with no README.md in the cache, offline: unknown, not an error.
    assert base_license("deitkit-tests/not-cached") is None
