"""`deitkit evaluate`: Azure ML's metrics and evaluation artifacts for a model on labelled data."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import click

from deitkit.cli.options import Switch, model_option

# Shown after the primary metric, per task; every metric is in metrics.json.
_SHOWN = {
    "image-classification": (
        "f1_score_macro",
        "precision_score_macro",
        "recall_score_macro",
        "AUC_macro",
        "log_loss",
    ),
    "image-classification-multilabel": (
        "accuracy",
        "f1_score_macro",
        "precision_score_macro",
        "recall_score_macro",
        "AUC_macro",
    ),
}


@click.command("evaluate")
@model_option
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Labelled images: class folders, images/ + labels.csv, JSONL, MLTable folder, .zip, "
    "or a Hugging Face dataset (its test split, else validation; or PATH:split).",
)
@click.option("--image-column", default=None, help="Image column of a Hugging Face dataset.")
@click.option("--label-column", default=None, help="Label column of a Hugging Face dataset.")
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New (or empty) folder for metrics.json, report.html, artifacts_metadata.json and "
    "artifacts/.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Multilabel decision threshold (default: the model's); unused for multiclass.",
)
@click.option(
    "--tune-thresholds",
    cls=Switch,
    default=False,
    help="Multilabel: choose each label's threshold for its best F1 on --data and write the "
    "model with them to OUTPUT/mlflow_model (the --model folder is not changed).",
)
@click.option(
    "--calibrate",
    cls=Switch,
    default=False,
    help="Fit temperature scaling on --data and write the model with it to "
    "OUTPUT/mlflow_model (the --model folder is not changed).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per forward pass (default 32).",
)
def evaluate(
    model_path: Path,
    data: Path,
    output: Path,
    threshold: float | None,
    tune_thresholds: bool,
    calibrate: bool,
    batch_size: int | None,
    image_column: str | None,
    label_column: str | None,
) -> None:
    """Score every image of --data; write Azure ML's metrics, tables, plots and an HTML report
    to --output, and log them to an MLflow run.

    Images that cannot be read are left out and listed in artifacts/evaluation_summary.json.
    """
    from deitkit.data.formats import read_dataset
    from deitkit.data.hf_source import TEST_SPLITS, HfOptions, hf_source
    from deitkit.evaluation import ARTIFACTS_DIR, METRICS_FILE, read_history
    from deitkit.evaluation import evaluate as run_evaluation
    from deitkit.evaluation_tracking import log_evaluation
    from deitkit.inference import MAX_BATCH_SIZE, load_classifier, packaged_checkpoint

    # The decisions are written into a copy of a deitkit package: check before scoring.
    package = model_path if tune_thresholds or calibrate else None
    if package is not None:
        packaged_checkpoint(package)
    classifier = load_classifier(
        model_path, threshold=threshold, max_batch_size=batch_size or MAX_BATCH_SIZE
    )
    dataset = data
    if hf_source(data) is not None:  # read here: evaluation reads other inputs with defaults
        hf = HfOptions(image_column, label_column, TEST_SPLITS)
        dataset = read_dataset(data, task=classifier.task, hf=hf)
    result = run_evaluation(
        classifier,
        dataset,
        output,
        threshold=threshold,
        tune_thresholds=tune_thresholds,
        calibrate=calibrate,
        package=package,
        history=read_history(model_path),
        title=f"{model_path.name} on {data.name}",
        progress=True,  # a bar in a terminal, a line per tenth elsewhere (deitkit.progress)
    )
    task = result.task
    threshold_note = ""
    if task.is_multilabel:
        tuned = len(set(result.thresholds)) > 1
        threshold_note = ", per-label thresholds" if tuned else f", threshold {result.threshold:g}"
    skipped = f", {len(result.unreadable)} unreadable left out" if result.unreadable else ""
    names = [result.primary_metric, *_SHOWN[task.value]]
    width = max(len("engine"), *(len(name) for name in names))
    click.echo(f"{'task':<{width}}  {task.value} ({len(result.labels)} labels{threshold_note})")
    click.echo(f"{'images':<{width}}  {result.n_scored} scored{skipped}")
    choice = classifier.engine_choice
    click.echo(f"{'engine':<{width}}  {choice.name} ({choice.reason})")
    for name in names:
        primary = "  (primary metric)" if name == result.primary_metric else ""
        click.echo(f"{name:<{width}}  {_format(result.metrics[name])}{primary}")
    decisions = result.decisions
    if decisions and decisions.calibration:
        click.echo(f"{'temperature':<{width}}  {result.temperature:.4g} (fitted on --data)")
    if decisions and decisions.tuning:
        tuning = decisions.tuning
        before, after = statistics.fmean(tuning.f1_before), statistics.fmean(tuning.f1_after)
        click.echo(
            f"{'thresholds':<{width}}  tuned per label: macro F1 {before:.4f} -> {after:.4f}"
        )
    artifacts = f"{len(result.artifacts)} artifacts in {result.output / ARTIFACTS_DIR}"
    click.echo(f"{'output':<{width}}  {result.output / METRICS_FILE}; {artifacts}")
    click.echo(f"{'report':<{width}}  {result.report}")
    if result.model:
        click.echo(f"{'model':<{width}}  {result.model} (with the decisions above)")
    # In an Azure ML job (the evaluation component), the job's run shows them in Studio.
    logged = log_evaluation(result, run_name=f"evaluate {model_path.name}")
    where = "the job's run" if logged.job_run else f"run {logged.run_id} in {logged.uri}"
    click.echo(f"{'mlflow':<{width}}  logged to {where}")


def _format(value: float) -> str:
    return "n/a (undefined on this data)" if math.isnan(value) else f"{value:.4f}"
