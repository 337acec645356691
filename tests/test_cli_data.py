"""`deitkit data ...` and the CLI's error contract (exit 2, one line, no traceback)."""

from __future__ import annotations

import json
import zipfile

from click.testing import CliRunner

from deitkit.cli.main import cli


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_digits_sample_validates_with_10_labels_and_1797_images(tmp_path):
    out = tmp_path / "digits"
    assert _run("data", "sample", "digits", "--out", str(out)).exit_code == 0
    result = _run("data", "validate", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_images"] == 1797 and len(report["labels"]) == 10
    assert report["labels"] == [str(d) for d in range(10)]
    assert report["task"] == "image-classification"
    text = _run("data", "validate", str(out)).output
    assert "images:  1797 usable" in text and "labels:  10" in text and "result: OK" in text


def test_multilabel_sample_validates_as_multilabel(tmp_path):
    out = tmp_path / "ml"
    assert (
        _run("data", "sample", "digits-multilabel", "--out", str(out), "--count", "50").exit_code
        == 0
    )
    report = json.loads(_run("data", "validate", str(out), "--json").stdout)
    assert report["task"] == "image-classification-multilabel" and report["n_images"] == 50


def test_validate_exits_1_on_data_errors(tmp_path, colour_folders):
    (colour_folders / "red" / "3.png").write_bytes(b"")  # 1 of 24 unreadable: over 1%
    result = _run("data", "validate", str(colour_folders))
    assert result.exit_code == 1
    assert "result: FAILED" in result.output and "3.png" in result.output


def test_unreadable_input_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "table"
    bad.mkdir()
    (bad / "MLTable").write_text("paths: [unclosed\n")
    result = _run("data", "validate", str(bad))
    assert result.exit_code == 2
    assert "MLTable" in result.output and "Traceback" not in result.output


def test_import_writes_annotations_and_mltables(tmp_path, colour_folders):
    archive = tmp_path / "colours.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(colour_folders.rglob("*.png")):
            zf.write(path, f"colours/{path.relative_to(colour_folders)}")
    out = tmp_path / "imported"
    result = _run("data", "import", str(archive), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "24 images, 3 labels" in result.output
    expected = (
        "train_annotations.jsonl",
        "validation_annotations.jsonl",
        "training-mltable-folder/MLTable",
        "validation-mltable-folder/MLTable",
    )
    for name in expected:
        assert (out / name).is_file()
    assert _run("data", "validate", str(out / "training-mltable-folder")).exit_code == 0
