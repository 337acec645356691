"""`deitkit package` and `deitkit predict` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from deitkit.cli.package import package
from deitkit.cli.predict import predict
from deitkit.errors import ConfigError
from deitkit.inference import load_classifier

LABELS = ["blue", "green", "red"]


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Two good PNGs and a text file posing as one."""
    paths = []
    for name, colour in (("sky.png", (20, 40, 220)), ("grass.png", (30, 200, 40))):
        Image.new("RGB", (20, 20), colour).save(tmp_path / name)
        paths.append(tmp_path / name)
    (tmp_path / "notes.png").write_text("not an image\n")
    return [*paths, tmp_path / "notes.png"]


def test_package_then_predict(tiny_checkpoint, images, tmp_path):
    runner = CliRunner()
    checkpoint = tiny_checkpoint("deit", labels=LABELS)
    model_dir = tmp_path / "mlflow_model"

    packed = runner.invoke(package, ["--checkpoint", str(checkpoint), "--output", str(model_dir)])
    assert packed.exit_code == 0, packed.output
    assert "task       image-classification" in packed.output
    assert "labels     3: blue, green, red" in packed.output

    result = runner.invoke(predict, ["--model", str(model_dir), "--top-k", "2", *map(str, images)])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["image", "top", "2"]
    expected = load_classifier(model_dir).predict([Image.open(images[0]).convert("RGB")])[0]
    (best, p1), (second, p2) = expected.top_k(2)
    assert lines[1].split() == [str(images[0]), best, f"{p1:.3f}", second, f"{p2:.3f}"]
    assert lines[2].startswith(str(images[1])) and len(lines[2].split()) == 5
    assert lines[3].startswith(str(images[2]))
    assert "error: the file is text, not an image" in lines[3]
    assert "1 of 3 images could not be read" in result.stderr


def test_predict_takes_a_checkpoint_folder_and_succeeds_on_good_images(tiny_checkpoint, images):
    checkpoint = tiny_checkpoint("vit", labels=LABELS)
    result = CliRunner().invoke(predict, ["--model", str(checkpoint), *map(str, images[:2])])
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 2 and all(len(row.split()) == 1 + 2 * 3 for row in rows)  # default top 3


def test_multilabel_rows_mark_labels_over_the_threshold(tiny_checkpoint, images):
    checkpoint = tiny_checkpoint("deit", labels=LABELS)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(
        json.dumps({**config, "problem_type": "multi_label_classification"})
    )
    runner = CliRunner()

    everything = runner.invoke(
        predict, ["--model", str(checkpoint), "--threshold", "0", str(images[0])]
    )
    nothing = runner.invoke(
        predict, ["--model", str(checkpoint), "--threshold", "1", str(images[0])]
    )

    assert everything.exit_code == 0 and nothing.exit_code == 0
    assert "(* = at or over 0)" in everything.stdout.splitlines()[0]
    assert everything.stdout.splitlines()[1].count("*") == 3
    assert nothing.stdout.splitlines()[1].count("*") == 0


def test_package_refuses_an_existing_output(tiny_checkpoint, tmp_path):
    output = tmp_path / "taken"
    output.mkdir()
    (output / "file.txt").write_text("x")
    result = CliRunner().invoke(
        package, ["--checkpoint", str(tiny_checkpoint("deit")), "--output", str(output)]
    )
    assert isinstance(result.exception, ConfigError)
    assert "already exists" in str(result.exception)


def test_predict_takes_the_catalog_model(images, tmp_path, monkeypatch):
    from helpers import save_catalog_model

    monkeypatch.setenv("DEITKIT_INFERENCE_DTYPE", "fp32")
    catalog = save_catalog_model(tmp_path / "catalog", labels=LABELS)
    result = CliRunner().invoke(predict, ["--model", str(catalog), *map(str, images[:2])])
    assert result.exit_code == 0, result.output
    expected = load_classifier(catalog).predict([Image.open(images[0]).convert("RGB")])[0]
    label, score = expected.top_k(1)[0]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith(str(images[0]))]
    assert row.split()[1:3] == [label, f"{score:.3f}"]


def test_multilabel_rows_mark_labels_over_their_own_thresholds(tiny_checkpoint, images):
    checkpoint = tiny_checkpoint("deit", labels=LABELS)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(
        json.dumps({**config, "problem_type": "multi_label_classification"})
    )
    # blue can never be marked (1.0 > any sigmoid here), green and red always are.
    thresholds = {"blue": 1.0, "green": 0.0, "red": 0.0}
    (checkpoint / "deitkit.json").write_text(json.dumps({"thresholds": thresholds}))
    runner = CliRunner()

    own = runner.invoke(predict, ["--model", str(checkpoint), str(images[0])])
    given = runner.invoke(predict, ["--model", str(checkpoint), "--threshold", "0", str(images[0])])

    assert own.exit_code == 0 and given.exit_code == 0, own.output + given.output
    assert "(* = at or over each label's own threshold)" in own.stdout.splitlines()[0]
    marked = {word.rstrip("*") for word in own.stdout.splitlines()[1].split() if "*" in word}
    assert marked == {"green", "red"}
    assert "(* = at or over 0)" in given.stdout.splitlines()[0]  # --threshold decides every label
    assert given.stdout.splitlines()[1].count("*") == 3
