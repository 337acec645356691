"""Batch scoring: inputs, output rows, the atomic resumable writer and the Azure driver."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import helpers
import numpy as np
import pandas as pd
import pytest
from helpers import (
    png_bytes,
    save_catalog_model,
    save_tiny_checkpoint,
    tiny_classifier,
    write_images,
)
from PIL import Image

from deitkit.batch import (
    HEADER,
    BatchInput,
    Item,
    PredictionsWriter,
    Row,
    batch_score,
    driver,
    frame_items,
    path_items,
    read_rows,
    to_rows,
)
from deitkit.batch.output import partial_path
from deitkit.errors import ConfigError, DataError
from deitkit.inference import Classifier
from deitkit.inference.scoring import score_items
from deitkit.tasks import Task

LABELS = ["blue", "green", "red"]
COLOURS = list(helpers.COLOURS.values())


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Classifier:
    return tiny_classifier(tmp_path_factory.mktemp("ckpt"))


def test_folder_input_is_recursive_sorted_and_skips_hidden_files(tmp_path):
    write_images(tmp_path / "b", 2)
    write_images(tmp_path / "a", 1)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "x.png").write_bytes(b"junk")

    items = list(BatchInput(tmp_path))

    assert [item.name for item in items] == ["a/00.png", "b/00.png", "b/01.png", "notes.txt"]
    assert len(BatchInput(tmp_path)) == 4
    assert items[0].path == tmp_path / "a" / "00.png"


def test_csv_rows_are_named_by_file_name_column_or_row_number(tmp_path):
    good = base64.b64encode(png_bytes(COLOURS[0])).decode()
    pd.DataFrame({"image": [good, good]}).to_csv(tmp_path / "plain.csv", index=False)
    pd.DataFrame({"file_name": ["sky.png", ""], "image": [good, good]}).to_csv(
        tmp_path / "named.csv", index=False
    )

    plain = list(BatchInput(tmp_path / "plain.csv"))
    named = list(BatchInput(tmp_path / "named.csv"))
    in_folder = [item.name for item in BatchInput(tmp_path)]

    assert [item.name for item in plain] == ["0", "1"]
    assert plain[0].text == good
    assert [item.name for item in named] == ["sky.png", "1"]
    assert in_folder == ["sky.png", "named.csv:1", "plain.csv:0", "plain.csv:1"]


def test_a_csv_without_an_image_column_is_refused_as_input_but_a_row_inside_a_folder(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,labels\n1.png,can\n")

    with pytest.raises(ConfigError, match="has no 'image' column \\(found: filename, labels\\)"):
        BatchInput(tmp_path / "labels.csv")
    (item,) = BatchInput(tmp_path)
    assert item.name == "labels.csv" and "without an 'image' column" in item.error


def test_input_must_be_a_folder_or_csv(tmp_path):
    (tmp_path / "one.png").write_bytes(png_bytes(COLOURS[0]))
    with pytest.raises(ConfigError, match=r"expected a folder of images or a \.csv file"):
        BatchInput(tmp_path / "one.png")
    with pytest.raises(ConfigError, match="not found"):
        BatchInput(tmp_path / "missing")


def test_rows_hold_json_lists_and_probs_round_trip_as_float32(classifier, tmp_path):
    paths = write_images(tmp_path, 2)
    scored = score_items(classifier, [Item(p.name, path=p) for p in paths])

    rows = to_rows(classifier, scored)
    fields = rows[0].fields()

    assert fields[0] == "00.png" and fields[4] == ""
    assert json.loads(fields[3]) == LABELS
    probs = json.loads(fields[2])
    assert np.array_equal(np.array(probs, dtype=np.float32), scored[0].probs)
    assert json.loads(fields[1]) == [LABELS[int(np.argmax(probs))]]
    assert Row("x.png", error="bad").fields() == ["x.png", "", "", "", "bad"]


def test_multilabel_rows_use_the_threshold(classifier, tmp_path):
    multilabel = Classifier(
        classifier.model,
        classifier.transform,
        labels=LABELS,
        task=Task.MULTILABEL,
        threshold=0.5,
        engine=classifier.engine,
    )
    (path,) = write_images(tmp_path, 1)
    scored = score_items(multilabel, [Item("a", path=path)])

    assert to_rows(multilabel, scored, threshold=0.0)[0].predicted == sorted(
        LABELS, key=lambda label: -scored[0].probs[LABELS.index(label)]
    )
    assert to_rows(multilabel, scored, threshold=1.0)[0].predicted == []


def test_writer_replaces_output_only_on_success(tmp_path):
    output = tmp_path / "out" / "predictions.csv"

    with pytest.raises(RuntimeError), PredictionsWriter(output) as writer:
        writer.write([Row("a.png", ["blue"], [1.0], ["blue"])])
        raise RuntimeError("killed mid-way")

    assert not output.exists()
    assert read_rows(partial_path(output)) == [["a.png", '["blue"]', "[1.0]", '["blue"]', ""]]
    with PredictionsWriter(output) as writer:
        writer.write([Row("b.png", error="bad")])
    assert read_rows(output) == [["b.png", "", "", "", "bad"]]
    assert not partial_path(output).exists()
    assert [p.name for p in output.parent.iterdir()] == ["predictions.csv"]


def test_resume_keeps_good_rows_from_the_partial_file_first(tmp_path):
    output = tmp_path / "predictions.csv"
    with PredictionsWriter(output) as writer:
        writer.write([Row("old.png", ["blue"], [1.0], ["blue"])])
    partial_path(output).write_text(
        ",".join(HEADER) + "\nnew.png,[],[],[],\nbad.png,,,,corrupt\nnew.png,[],[],[],\n"
    )

    with PredictionsWriter(output, resume=True) as writer:
        assert writer.kept == {"new.png": 2}

    assert [r[0] for r in read_rows(output)] == ["new.png", "new.png"]
    with PredictionsWriter(output, resume=True) as writer:
        assert writer.kept == {"new.png": 2}


def test_resume_refuses_a_file_that_is_not_a_predictions_csv(tmp_path):
    output = tmp_path / "predictions.csv"
    output.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"predictions\.csv:1: not a batch-score predictions file"):
        PredictionsWriter(output, resume=True).__enter__()
    with pytest.raises(ConfigError, match="is a folder"):
        PredictionsWriter(tmp_path)


def test_batch_score_skips_kept_rows_and_counts_them(classifier, tmp_path, monkeypatch):
    write_images(tmp_path / "images", 6)
    output = tmp_path / "predictions.csv"
    first = batch_score(classifier, tmp_path / "images", output)
    calls: list[int] = []
    original = Classifier.predict_images
    monkeypatch.setattr(
        Classifier,
        "predict_images",
        lambda self, images: calls.append(len(images)) or original(self, images),
    )
    write_images(tmp_path / "images" / "more", 2)

    second = batch_score(classifier, tmp_path / "images", output, resume=True)

    assert (first.rows, first.scored, first.errors) == (6, 6, 0)
    assert (second.rows, second.kept, second.scored) == (8, 6, 2)
    assert calls == [2]
    assert len(read_rows(output)) == 8


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A packaged model as Azure ML mounts it: AZUREML_MODEL_DIR/<registered folder>/MLmodel."""

    from deitkit.packaging import package_model

    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", labels=LABELS)
    package_model(checkpoint, tmp_path / "azureml-models" / "deit" / "1" / "mlflow_model")
    return tmp_path / "azureml-models"


def test_find_model_dir_looks_down_the_azure_layout(model_dir, tmp_path):
    assert driver.find_model_dir(model_dir) == model_dir / "deit" / "1" / "mlflow_model"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no packaged model"):
        driver.find_model_dir(tmp_path / "empty")
    for name in ("a", "b"):
        (tmp_path / "two" / name).mkdir(parents=True)
        (tmp_path / "two" / name / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ConfigError, match="holds several models"):
        driver.find_model_dir(tmp_path / "two")


def test_driver_returns_one_csv_record_per_image(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    paths = write_images(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = base64.b64encode(png_bytes(COLOURS[2])).decode()
    pd.DataFrame({"image": [good, ""]}).to_csv(tmp_path / "in" / "table.csv", index=False)

    driver.init()
    lines = driver.run([*map(str, paths), str(tmp_path / "in" / "broken.jpg")])
    lines += driver.run([str(tmp_path / "in" / "table.csv")])
    frame_lines = driver.run(pd.DataFrame({"image": [good]}, index=[7]))

    records = list(csv.reader(lines))
    assert [r[0] for r in records] == [
        "00.png",
        "01.png",
        "broken.jpg",
        "table.csv:0",
        "table.csv:1",
    ]
    assert all(len(r) == len(HEADER) for r in records)
    assert [bool(r[4]) for r in records] == [False, False, True, False, True]
    assert json.loads(records[0][3]) == LABELS
    assert next(csv.reader(frame_lines))[0] == "7"


def test_the_driver_scores_the_catalog_model_as_azure_mounts_it(tmp_path, monkeypatch):
    # A registry model's files as the deployment sees them: <model dir>/mlflow_model_folder/.
    root = tmp_path / "azureml-models" / "facebook-deit-base-patch16-224" / "20"
    catalog = save_catalog_model(root / "mlflow_model_folder", labels=LABELS)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "azureml-models"))
    monkeypatch.setenv("DEITKIT_INFERENCE_DTYPE", "fp32")
    paths = write_images(tmp_path / "in", 3)

    driver.init()
    records = list(csv.reader(driver.run([str(p) for p in paths])))

    assert [r[0] for r in records] == ["00.png", "01.png", "02.png"]
    expected = Classifier.from_pretrained(
        catalog / "model", processor=catalog / "components" / "image_processor"
    ).predict([Image.open(p).convert("RGB") for p in paths])
    for record, prediction in zip(records, expected, strict=True):
        assert json.loads(record[3]) == LABELS and record[4] == ""
        np.testing.assert_allclose(json.loads(record[2]), prediction.probs, atol=1e-6)


def test_frame_items_needs_an_image_column():
    with pytest.raises(ConfigError, match="has no 'image' column"):
        list(frame_items(pd.DataFrame({"x": [1]})))


def test_endpoint_script_exposes_the_driver():
    import importlib.util

    script = Path(__file__).parents[1] / "endpoints" / "batch" / "driver.py"
    spec = importlib.util.spec_from_file_location("endpoint_batch_driver", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.init is driver.init and module.run is driver.run


@pytest.mark.slow
def test_endpoint_script_falls_back_to_the_deitkit_copy_inside_the_model(model_dir, tmp_path):
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "endpoints" / "batch" / "driver.py"
    (image,) = write_images(tmp_path / "in", 1)
    src = str(Path(driver.__file__).parents[2])
    # Without the installed deitkit on sys.path, only the model's code/ copy can be imported.
    program = (
        "import runpy, sys\n"
        f"sys.path = [p for p in sys.path if p != {src!r}]\n"
        f"script = runpy.run_path({str(script)!r})\n"
        "script['init']()\n"
        f"print(script['run']([{str(image)!r}])[0])\n"
        "import deitkit\n"
        "print(deitkit.__file__)\n"
    )
    env = {"AZUREML_MODEL_DIR": str(model_dir), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}

    done = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    record, location = done.stdout.strip().splitlines()[-2:]
    assert record.startswith("00.png,") and record.endswith(",")
    assert Path(location).is_relative_to(model_dir)


@pytest.mark.timeout(30)
def test_fifos_and_sockets_in_the_folder_get_a_row_and_are_never_opened(tmp_path):
    import os
    import socket

    write_images(tmp_path, 1)
    os.mkfifo(tmp_path / "p.png")
    os.mkfifo(tmp_path / "t.csv")  # a CSV would be read as a table: opening it would block
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "s.png"))
    server.close()

    items = BatchInput(tmp_path)

    assert len(items) == 4
    assert {item.name: (item.path, item.error) for item in items} == {
        "00.png": (tmp_path / "00.png", ""),
        "p.png": (None, "is a FIFO, not a regular file"),
        "s.png": (None, "is a socket, not a regular file"),
        "t.csv": (None, "is a FIFO, not a regular file"),
    }
    with pytest.raises(ConfigError, match=r"t\.csv: is a FIFO, not a regular file; expected"):
        BatchInput(tmp_path / "t.csv")
    (item,) = path_items([tmp_path / "p.png"])
    assert (item.name, item.path, item.error) == ("p.png", None, "is a FIFO, not a regular file")


def test_links_out_of_the_folder_are_refused_and_folder_links_reported(tmp_path):
    source, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    write_images(source / "real", 1)
    write_images(elsewhere, 1)
    (source / "inside.png").symlink_to("real/00.png")
    (source / "outside.png").symlink_to(elsewhere / "00.png")
    (source / "alias").symlink_to("real", target_is_directory=True)
    (source / "away").symlink_to(elsewhere, target_is_directory=True)
    (source / "itself").symlink_to(".", target_is_directory=True)
    (source / "gone.png").symlink_to("nothing.png")

    rows = {item.name: (item.path, item.error) for item in BatchInput(source)}

    inside_folder = (
        "is a symlink to a folder inside the input folder; not followed (its files are scored "
        "under their own paths)"
    )
    assert rows == {
        "alias": (None, inside_folder),
        "away": (
            None,
            f"is a symlink to a folder outside the input folder ({elsewhere}); not followed",
        ),
        "gone.png": (None, "is a broken symlink (its target does not exist)"),
        "inside.png": (source / "inside.png", ""),
        "itself": (None, inside_folder),
        "outside.png": (
            None,
            f"is a symlink to a file outside the input folder ({elsewhere / '00.png'}); "
            "not followed",
        ),
        "real/00.png": (source / "real" / "00.png", ""),
    }


ROW = 'a.png,"[""blue""]",[1.0],"[""blue""]",\r\n'


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        ('b.png,"[""blue""]",[0.5', 3),  # cut in the middle of a field, no line end
        ('b.png,"[""blue""]",[1.0],"[""blue""]",', 3),  # every field, but no line end
        ("b.png,[]\r\n", 3),  # fewer fields than the header
    ],
)
def test_resume_drops_a_torn_last_row_and_says_so(tmp_path, tail, line):
    output = tmp_path / "predictions.csv"
    partial_path(output).write_text(",".join(HEADER) + "\r\n" + ROW + tail, newline="")

    with PredictionsWriter(output, resume=True) as writer:
        assert writer.kept == {"a.png": 1}
        assert writer.notices == [
            f"{partial_path(output)}:{line}: dropped the last row, cut short when the previous "
            "run stopped while writing it; its item is scored again"
        ]

    assert [row[0] for row in read_rows(output)] == ["a.png"]


def test_a_short_row_before_the_last_still_stops_resume(tmp_path):
    output = tmp_path / "predictions.csv"
    output.write_text(",".join(HEADER) + "\nb.png,[]\n" + ROW, newline="")

    with pytest.raises(DataError, match=r"predictions\.csv:2: expected 5 fields, found 2"):
        PredictionsWriter(output, resume=True).__enter__()


def test_batch_score_passes_the_torn_row_notice_on(classifier, tmp_path):
    write_images(tmp_path / "images", 2)
    output = tmp_path / "predictions.csv"
    batch_score(classifier, tmp_path / "images", output)
    whole = output.read_bytes()
    output.write_bytes(whole[: whole.rindex(b"01.png") + 20])  # the last row, cut short
    notices: list[str] = []

    summary = batch_score(
        classifier, tmp_path / "images", output, resume=True, notify=notices.append
    )

    assert (summary.kept, summary.scored) == (1, 1)
    assert len(notices) == 1 and notices[0].startswith(f"{output}:3: dropped the last row")
    assert [row[0] for row in read_rows(output)] == ["00.png", "01.png"]


def test_an_output_inside_the_input_or_not_a_regular_file_is_refused(classifier, tmp_path):
    import os

    write_images(tmp_path / "images", 1)
    with pytest.raises(ConfigError, match="lies inside --input"):
        batch_score(classifier, tmp_path / "images", tmp_path / "images" / "predictions.csv")
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(ConfigError, match=r"pipe\.csv: is a FIFO, not a regular file; --output"):
        PredictionsWriter(tmp_path / "pipe.csv")
    assert not (tmp_path / "images" / "predictions.csv").exists()


def test_the_predicted_column_follows_per_label_thresholds(classifier, tmp_path):
    multilabel = Classifier(
        classifier.model,
        classifier.transform,
        labels=LABELS,
        task=Task.MULTILABEL,
        threshold=0.5,
        engine=classifier.engine,
    )
    paths = write_images(tmp_path / "images", 3)
    probs = np.stack([s.probs for s in score_items(multilabel, [Item("a", path=paths[0])])])[0]
    # Each label's threshold just past its probability on the first image, across 0.5.
    thresholds = {
        label: p - 0.01 if p < 0.5 else min(p + 0.01, 1.0)
        for label, p in zip(LABELS, probs, strict=True)
    }
    tuned = multilabel.with_decisions(thresholds=thresholds)

    def predicted(classifier, output, **options):
        batch_score(classifier, tmp_path / "images", output, **options)
        rows = read_rows(output)
        return {row[0]: json.loads(row[1]) for row in rows}, {row[0]: row[2] for row in rows}

    at_half, probs_half = predicted(multilabel, tmp_path / "half.csv")
    per_label, probs_tuned = predicted(tuned, tmp_path / "tuned.csv")
    overridden, _ = predicted(tuned, tmp_path / "override.csv", threshold=0.5)

    assert probs_tuned == probs_half  # thresholds change decisions, never probabilities
    assert set(per_label["00.png"]) == {x for x in LABELS if probs[LABELS.index(x)] < 0.5}
    assert set(at_half["00.png"]) == set(LABELS) - set(per_label["00.png"])
    assert overridden == at_half
    for name, probs_text in probs_tuned.items():
        row = json.loads(probs_text)
        assert per_label[name] == [
            label
            for label, p in sorted(zip(LABELS, row, strict=True), key=lambda pair: -pair[1])
            if p >= thresholds[label]
        ]
