"""`deitkit evaluate` from the command line: summary, output folder, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import save_catalog_model, save_hftransformersv2_model, save_tiny_checkpoint
from PIL import Image

from deitkit.cli.evaluate import evaluate
from deitkit.errors import ConfigError, DataError
from deitkit.metrics import METRIC_NAMES
from deitkit.tasks import Task

LABELS = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A packaged tiny multiclass model."""

    from deitkit.packaging import package_model

    root = tmp_path_factory.mktemp("model")
    return package_model(save_tiny_checkpoint(root / "ckpt", labels=LABELS), root / "mlflow_model")


@pytest.fixture(scope="module")
def multilabel_dir(tmp_path_factory) -> Path:
    """A tiny multilabel checkpoint folder (problem_type multi_label_classification)."""

    folder = save_tiny_checkpoint(tmp_path_factory.mktemp("multilabel"), labels=LABELS)
    config = json.loads((folder / "config.json").read_text())
    config["problem_type"] = "multi_label_classification"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def run(*args):
    return CliRunner().invoke(evaluate, [str(a) for a in args])


def test_evaluate_prints_the_primary_metric_and_writes_the_folder(
    model_dir, colour_folders, tmp_path
):
    out = tmp_path / "evaluation"

    result = run("--model", model_dir, "--data", colour_folders, "--output", out)

    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == [*METRIC_NAMES[Task.MULTICLASS], "expected_calibration_error"]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["task", "image-classification", "(3"]
    assert lines[1].split() == ["images", "24", "scored"]
    summary = json.loads((out / "artifacts" / "evaluation_summary.json").read_text())
    engine = summary["engine"]
    shown = f"{engine['name']} ({engine['reason']})"
    assert lines[2].split(maxsplit=1) == ["engine", shown]
    assert engine["name"] in {"torch-fp32", "torch-bf16", "onnx-fp32"} and engine["reason"]
    assert summary["precision"]["name"] == engine["name"].split("-")[1]
    assert lines[3].split() == ["accuracy", f"{metrics['accuracy']:.4f}", "(primary", "metric)"]
    assert any(line.split()[:2] == ["log_loss", f"{metrics['log_loss']:.4f}"] for line in lines)
    assert (out / "artifacts_metadata.json").is_file()
    assert any(line.startswith("output") and "8 artifacts" in line for line in lines)
    assert any(line.split() == ["report", str(out / "report.html")] for line in lines)


def test_multilabel_summary_shows_iou_and_the_threshold(
    multilabel_dir, colour_multilabel, tmp_path
):
    result = run(
        "--model",
        multilabel_dir,
        "--data",
        colour_multilabel,
        "--output",
        tmp_path / "e",
        "--threshold",
        "0.3",
    )

    assert result.exit_code == 0, result.output
    assert "(3 labels, threshold 0.3)" in result.stdout.splitlines()[0]
    metrics = json.loads((tmp_path / "e/metrics.json").read_text())
    assert list(metrics) == [*METRIC_NAMES[Task.MULTILABEL], "expected_calibration_error"]
    assert f"iou                    {metrics['iou']:.4f}  (primary metric)" in result.stdout


def test_unknown_label_is_a_clear_error(model_dir, colour_folders, tmp_path):
    (colour_folders / "purple").mkdir()
    Image.new("RGB", (20, 20), (120, 0, 120)).save(colour_folders / "purple" / "1.png")

    result = run("--model", model_dir, "--data", colour_folders, "--output", tmp_path / "out")

    assert isinstance(result.exception, DataError)
    assert "purple/1.png: label 'purple'" in str(result.exception)
    assert "not one of the model's labels (blue, green, red)" in str(result.exception)


def test_in_a_job_the_metrics_and_figures_go_to_the_jobs_run(
    model_dir, colour_folders, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("job", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as Azure ML sets them in every job
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)

    result = run("--model", model_dir, "--data", colour_folders, "--output", tmp_path / "e")

    assert result.exit_code == 0, result.output
    assert "logged to the job's run" in result.stdout.splitlines()[-1]
    metrics = json.loads((tmp_path / "e/metrics.json").read_text())
    assert client.get_run(run_id).data.metrics["accuracy"] == metrics["accuracy"]
    logged = {a.path for a in client.list_artifacts(run_id, "artifacts")}
    assert {"artifacts/confusion_matrix.png", "artifacts/per_class.png"} <= logged
    assert "metrics.json" in {a.path for a in client.list_artifacts(run_id)}


def test_outside_a_job_a_run_in_a_store_inside_the_output_gets_everything(
    model_dir, colour_folders, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "e"
    result = run("--model", model_dir, "--data", colour_folders, "--output", out)

    assert result.exit_code == 0, result.output
    uri = f"sqlite:///{out.resolve()}/mlflow.db"
    assert f"in {uri}" in result.stdout.splitlines()[-1]
    client = MlflowClient(tracking_uri=uri)
    [logged] = client.search_runs([client.get_experiment_by_name("deitkit-evaluate").experiment_id])
    metrics = json.loads((out / "metrics.json").read_text())
    assert logged.data.metrics["accuracy"] == metrics["accuracy"]
    run_id = logged.info.run_id
    assert {"metrics.json", "report.html", "artifacts"} <= {
        a.path for a in client.list_artifacts(run_id)
    }
    figures = {a.path for a in client.list_artifacts(run_id, "artifacts")}
    assert {"artifacts/confusion_matrix.png", "artifacts/per_class.csv"} <= figures
    assert str(out / "report.html") in result.stdout


def test_an_output_that_is_not_empty_is_refused_before_scoring(model_dir, colour_folders, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    result = run("--model", model_dir, "--data", colour_folders, "--output", out)
    assert result.exit_code != 0
    assert "exists and is not empty" in str(result.exception or result.output)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_thresholds_are_not_tuned_for_a_multiclass_model(model_dir, colour_folders, tmp_path):
    result = run(
        "--model", model_dir, "--data", colour_folders, "--output", tmp_path / "e",
        "--tune-thresholds", "true",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "applies to multilabel models" in str(result.exception or result.output)
    assert not (tmp_path / "e").exists()


def test_the_catalog_model_evaluates_with_its_labels(colour_folders, tmp_path):
    # Azure's catalog layout (mlflow.transformers): weights in model/, preprocessing apart.
    catalog = save_catalog_model(tmp_path / "catalog", labels=LABELS)
    out = tmp_path / "evaluation"

    result = run("--model", catalog, "--data", colour_folders, "--output", out)

    assert result.exit_code == 0, result.output
    assert list(json.loads((out / "metrics.json").read_text())) == [
        *METRIC_NAMES[Task.MULTICLASS],
        "expected_calibration_error",
    ]
    assert result.stdout.splitlines()[1].split() == ["images", "24", "scored"]
    per_class = (out / "artifacts" / "per_class.csv").read_text()
    assert all(label in per_class for label in LABELS)


def test_an_hftransformersv2_model_is_refused_before_anything_is_written(colour_folders, tmp_path):
    legacy = save_hftransformersv2_model(tmp_path / "legacy")

    result = run("--model", legacy, "--data", colour_folders, "--output", tmp_path / "out")

    assert isinstance(result.exception, ConfigError)
    assert "older hftransformersv2 flavor" in str(result.exception)
    assert "\n" not in str(result.exception) and not (tmp_path / "out").exists()
