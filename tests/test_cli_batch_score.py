"""`deitkit batch-score` from the command line: bad files, base64 CSVs, --resume, atomic output."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import (
    azure_model_import,
    save_catalog_model,
    save_text_classification_model,
    save_tiny_checkpoint,
)
from PIL import Image

from deitkit.batch.output import HEADER, partial_path
from deitkit.cli.batch_score import batch_score
from deitkit.errors import ConfigError
from deitkit.inference import Classifier

LABELS = ["blue", "green", "red"]
N_GOOD = 46


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A packaged tiny model (what `deitkit package` writes)."""

    from deitkit.packaging import package_model

    root = tmp_path_factory.mktemp("model")
    checkpoint = save_tiny_checkpoint(root / "ckpt", labels=LABELS)
    return package_model(checkpoint, root / "mlflow_model")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """50 files: 46 good images (PNG and JPEG, some in a subfolder), 2 corrupt, 1 empty, 1 text."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    (root / "more").mkdir()
    for i in range(N_GOOD):
        pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        folder = root / "more" if i % 5 == 0 else root
        Image.fromarray(pixels).save(folder / f"img{i:02d}.{'jpg' if i % 2 else 'png'}")
    whole = (root / "more" / "img00.png").read_bytes()
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "garbage.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (root / "empty.png").write_bytes(b"")
    (root / "readme.txt").write_text("these are test images\n")
    return root


def run(*args: str):
    return CliRunner().invoke(batch_score, [str(a) for a in args])


def read_output(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_fifty_files_with_four_bad_give_fifty_rows_and_exit_0(model_dir, images, tmp_path):
    output = tmp_path / "predictions.csv"

    result = run("--model", model_dir, "--input", images, "--output", output)

    assert result.exit_code == 0, result.output
    frame = read_output(output)
    assert tuple(frame.columns) == HEADER
    assert len(frame) == 50
    bad = frame[frame["error"] != ""]
    assert sorted(bad["file_name"]) == ["empty.png", "garbage.jpg", "readme.txt", "truncated.png"]
    assert (bad[["predicted", "probs", "labels"]] == "").all().all()
    assert "empty (0 bytes)" in bad.set_index("file_name").loc["empty.png", "error"]
    assert "text, not an image" in bad.set_index("file_name").loc["readme.txt", "error"]
    good = frame[frame["error"] == ""]
    assert all(len(json.loads(p)) == 3 and abs(sum(json.loads(p)) - 1) < 1e-5 for p in good.probs)
    assert all(json.loads(labels) == LABELS for labels in good["labels"])
    assert "more/img05.jpg" in set(frame["file_name"])
    assert list(frame["file_name"]) == sorted(frame["file_name"])
    assert "rows       50" in result.stdout
    assert "scored     50, 4 with an error" in result.stdout


def test_base64_csv_gives_the_same_probabilities_as_the_folder(model_dir, images, tmp_path):
    run("--model", model_dir, "--input", images, "--output", tmp_path / "folder.csv")
    folder = read_output(tmp_path / "folder.csv")
    good = folder[folder["error"] == ""]
    table = pd.DataFrame(
        {
            "file_name": good["file_name"],
            # encodebytes breaks lines every 76 characters, as many tools write base64.
            "image": [
                base64.encodebytes((images / name).read_bytes()).decode()
                for name in good["file_name"]
            ],
        }
    )
    table.to_csv(tmp_path / "images.csv", index=False)

    result = run(
        "--model", model_dir, "--input", tmp_path / "images.csv", "--output", tmp_path / "b64.csv"
    )

    assert result.exit_code == 0, result.output
    b64 = read_output(tmp_path / "b64.csv").set_index("file_name")
    assert len(b64) == N_GOOD and (b64["error"] == "").all()
    for name, probs, predicted in zip(
        good["file_name"], good["probs"], good["predicted"], strict=True
    ):
        np.testing.assert_allclose(json.loads(b64.loc[name, "probs"]), json.loads(probs), atol=1e-6)
        assert b64.loc[name, "predicted"] == predicted


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """Images per `predict_images` call, recorded while the real model runs."""
    calls: list[int] = []
    original = Classifier.predict_images

    def predict_images(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(Classifier, "predict_images", predict_images)
    return calls


def test_resume_scores_only_what_is_missing(model_dir, images, tmp_path, counted):
    output = tmp_path / "predictions.csv"
    first = run("--model", model_dir, "--input", images, "--output", output, "--batch-size", 8)
    before = read_output(output)
    counted.clear()

    again = run("--model", model_dir, "--input", images, "--output", output, "--resume")

    assert first.exit_code == 0 and again.exit_code == 0, again.output
    # Only the 4 bad files are tried again; they fail to decode, so the model never runs.
    assert counted == []
    assert "kept       46 from the previous run" in again.stdout
    after = read_output(output)
    assert len(after) == 50
    kept = after[after["error"] == ""].set_index("file_name")
    for _, row in before[before["error"] == ""].iterrows():
        assert kept.loc[row["file_name"], "probs"] == row["probs"]


def test_a_failure_mid_way_leaves_no_output_and_resume_continues(
    model_dir, images, tmp_path, monkeypatch
):
    output = tmp_path / "out" / "predictions.csv"
    real = Classifier.predict_images
    calls: list[int] = []

    def failing(self, batch):
        if len(calls) == 2:
            raise RuntimeError("the machine was pre-empted")
        calls.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(Classifier, "predict_images", failing)
    failed = run("--model", model_dir, "--input", images, "--output", output, "--batch-size", 10)

    assert failed.exit_code != 0 and isinstance(failed.exception, RuntimeError)
    assert not output.exists()
    assert "run again with --resume" in failed.stderr
    saved = read_output(partial_path(output))
    assert len(saved) == 20  # two whole batches of 10 were flushed before the third failed

    calls.clear()
    monkeypatch.setattr(
        Classifier, "predict_images", lambda self, b: calls.append(len(b)) or real(self, b)
    )
    resumed = run("--model", model_dir, "--input", images, "--output", output, "--resume")

    assert resumed.exit_code == 0, resumed.output
    frame = read_output(output)
    assert len(frame) == 50 and frame["file_name"].is_unique
    assert sum(calls) == N_GOOD - int((saved["error"] == "").sum())
    assert not partial_path(output).exists()


def test_a_csv_without_an_image_column_is_a_clear_error(model_dir, tmp_path):
    (tmp_path / "data.csv").write_text("path,label\na.png,can\n")

    result = run(
        "--model", model_dir, "--input", tmp_path / "data.csv", "--output", tmp_path / "o.csv"
    )

    assert isinstance(result.exception, ConfigError)
    assert "has no 'image' column (found: path, label)" in str(result.exception)
    assert not (tmp_path / "o.csv").exists()


def test_the_catalog_model_batch_scores_as_shipped_and_as_imported(images, tmp_path, monkeypatch):
    from deitkit.inference import load_classifier

    monkeypatch.setenv("DEITKIT_INFERENCE_DTYPE", "fp32")
    catalog = save_catalog_model(tmp_path / "catalog", labels=LABELS)
    imported = azure_model_import(catalog, tmp_path / "imported")
    outputs = {}
    for name, model in (("catalog", catalog), ("imported", imported)):
        outputs[name] = tmp_path / f"{name}.csv"
        result = run("--model", model, "--input", images, "--output", outputs[name])
        assert result.exit_code == 0, result.output

    rows = read_output(outputs["catalog"])
    assert len(rows) == 50 and (rows["error"] != "").sum() == 4
    good = rows[rows["error"] == ""]
    assert all(json.loads(labels) == LABELS for labels in good["labels"])
    # The same answers whichever layout the model has, and those of the model itself.
    assert read_output(outputs["imported"]).equals(rows)
    first = good.iloc[0]
    expected = load_classifier(catalog).predict([Image.open(images / first["file_name"])])
    np.testing.assert_allclose(json.loads(first["probs"]), expected[0].probs, atol=1e-6)


def test_an_mlflow_model_of_another_task_is_refused_before_anything_is_written(images, tmp_path):
    text = save_text_classification_model(tmp_path / "text")

    result = run("--model", text, "--input", images, "--output", tmp_path / "out.csv")

    assert isinstance(result.exception, ConfigError)
    assert "a 'text-classification' model (TextClassificationPipeline)" in str(result.exception)
    assert not (tmp_path / "out.csv").exists() and not partial_path(tmp_path / "out.csv").exists()
