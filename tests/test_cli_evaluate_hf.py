"""`deitkit evaluate --data` on a Hugging Face dataset: its test split, columns by name."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import save_tiny_checkpoint
from hf_helpers import colour_dataset

from deitkit.cli.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")


def test_evaluate_reads_the_test_split_and_named_columns(colour_folders, tmp_path, monkeypatch):
    from datasets import DatasetDict

    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))
    ds = colour_dataset(colour_folders, image="pixels", label="colour")
    DatasetDict({"train": ds, "test": ds.select(range(0, 24, 4))}).save_to_disk(tmp_path / "d")
    model = save_tiny_checkpoint(tmp_path / "ckpt", labels=["blue", "green", "red"])
    args = ["--model", model, "--data", tmp_path / "d", "--output", tmp_path / "out"]
    args += ["--image-column", "pixels", "--label-column", "colour"]
    result = CliRunner().invoke(evaluate, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split() == ["images", "6", "scored"]
