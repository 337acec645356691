"""Tests for deitkit.quickstart and `deitkit quickstart`: every stage on one tiny epoch."""

from __future__ import annotations

import csv
import json
import os

import psutil
import pytest
from click.testing import CliRunner

from deitkit.cli.main import cli
from deitkit.errors import ConfigError
from deitkit.quickstart import MARKER, StageError, check_answer, prepare_output
from deitkit.tasks import Task

pytestmark = pytest.mark.slow

# Every stage on a quick try: 150 images (15 of each digit; 30 validation images, enough for the
# batch stage's 24) and one epoch. The presets themselves are what `make quickstart` runs.
QUICK = ["--epochs", "1", "--sample-size", "150"]


def _servers() -> list[psutil.Process]:
    """Our own children still serving (the server runs as `python -m deitkit.cli.serve`)."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "deitkit.cli.serve" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.usefixtures("shared_mlflow_store")
def test_quickstart_runs_every_stage_and_stops_the_server(tmp_path, task):
    out = tmp_path / "qs"
    result = CliRunner().invoke(
        cli, ["quickstart", "--out", str(out), "--task", task.value, *QUICK]
    )
    assert result.exit_code == 0, result.output
    text = result.output
    for stage in (
        "sample data",
        "validate",
        "fine-tune + package",
        "evaluate",
        "online endpoint",
        "batch endpoint",
        "total",
    ):
        assert f"  {stage}" in text
    assert f"validation  {task.primary_metric} " in text
    assert "go further:" in text

    answer = json.loads((out / "online" / "response.json").read_text())
    request = json.loads((out / "online" / "request.json").read_text())
    assert request["input_data"]["columns"] == ["image"]
    assert request["input_data"]["index"] == [0, 1]
    assert all("\n" in image for image in request["input_data"]["data"])  # encodebytes
    labels = [str(d) for d in range(10)]
    assert [item["labels"] for item in answer] == [labels, labels]
    if not task.is_multilabel:
        assert all(abs(sum(item["probs"]) - 1) < 1e-4 for item in answer)

    with (out / "batch" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24 and not any(row["error"] for row in rows)
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert 0.0 <= metrics[task.primary_metric] <= 1.0
    assert (out / "finetune" / "mlflow_model" / "MLmodel").is_file()
    assert (out / "data" / "training-mltable-folder" / "MLTable").is_file()
    assert not _servers()


@pytest.mark.usefixtures("shared_mlflow_store")
def test_a_failing_server_stops_the_run_with_the_stage_named_and_no_server_left(
    tmp_path, monkeypatch
):
    # An invalid limit makes the server's init() fail: the online stage must report it.
    monkeypatch.setenv("DEITKIT_MAX_IMAGES", "many")
    result = CliRunner().invoke(cli, ["quickstart", "--out", str(tmp_path / "qs"), *QUICK])
    assert result.exit_code == 2, result.output
    assert "error: stage 'online endpoint' failed" in result.output
    assert "Traceback" not in result.output
    assert not _servers()


@pytest.mark.parametrize(
    "task, size, why",
    [
        (Task.MULTICLASS, "99", "sample size 99 is too small; use 100+"),
        (Task.MULTICLASS, "1798", "the digits sample has 1797 images"),
        (Task.MULTILABEL, "99", "sample size 99 is too small"),
    ],
)
def test_a_sample_size_out_of_range_is_refused_before_anything_runs(tmp_path, task, size, why):
    out = tmp_path / "qs"
    result = CliRunner().invoke(
        cli, ["quickstart", "--out", str(out), "--task", task.value, "--sample-size", size]
    )
    assert result.exit_code == 2 and why in result.output, result.output
    assert not out.exists()


def test_an_output_folder_that_is_not_ours_is_refused_untouched(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a previous quickstart output"):
        prepare_output(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / MARKER).touch()
    (previous / "old.txt").write_text("old")
    assert prepare_output(previous).root == previous
    assert not (previous / "old.txt").exists()


@pytest.mark.parametrize(
    "answer, why",
    [
        ({"probs": [1.0]}, "a list of 1"),
        ([{"probs": [0.5, 0.5]}], "not {probs, labels}"),
        ([{"probs": [0.5, 0.5], "labels": ["b", "a"]}], "label order"),
        ([{"probs": [0.7, 0.7], "labels": ["a", "b"]}], "sum to 1"),
    ],
)
def test_malformed_answers_are_caught(answer, why):
    with pytest.raises(StageError, match=why.replace("{", r"\{").replace("}", r"\}")):
        check_answer(answer, n_images=1, labels=["a", "b"], task=Task.MULTICLASS)
    check_answer(
        [{"probs": [0.7, 0.7], "labels": ["a", "b"]}],
        n_images=1,
        labels=["a", "b"],
        task=Task.MULTILABEL,
    )
