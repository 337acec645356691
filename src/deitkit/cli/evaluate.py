"""`deitkit evaluate`: Azure ML's metrics and evaluation artifacts for a model on labelled data."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from deitkit.cli.options import model_option

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
    type=click.Path(exists=True, path_type=Path),
    help="Labelled images: class folders, images/ + labels.csv, JSONL, MLTable folder or .zip.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for metrics.json, artifacts_metadata.json and artifacts/.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Multilabel decision threshold (default: the model's); unused for multiclass.",
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
    batch_size: int | None,
) -> None:
    """Score every image of --data and write Azure ML's metrics, tables and plots to --output.

    Images that cannot be read are left out and listed in artifacts/evaluation_summary.json.
    """
    from deitkit.evaluation import ARTIFACTS_DIR, METRICS_FILE
    from deitkit.evaluation import evaluate as run_evaluation
    from deitkit.inference import MAX_BATCH_SIZE, load_classifier
    from deitkit.job_run import log_to_job_run

    classifier = load_classifier(
        model_path, threshold=threshold, max_batch_size=batch_size or MAX_BATCH_SIZE
    )
    # A refused model writes nothing; an --output that cannot be created fails before scoring.
    output.mkdir(parents=True, exist_ok=True)
    result = run_evaluation(
        classifier, data, output, threshold=threshold, progress=sys.stderr.isatty()
    )
    task = result.task
    threshold_note = f", threshold {result.threshold:g}" if task.is_multilabel else ""
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
    artifacts = f"{len(result.artifacts)} artifacts in {result.output / ARTIFACTS_DIR}"
    click.echo(f"{'output':<{width}}  {result.output / METRICS_FILE}; {artifacts}")
    # In an Azure ML job (the evaluation component), the job's run shows them in Studio.
    if log_to_job_run(
        result.metrics, [result.output / METRICS_FILE, result.output / ARTIFACTS_DIR]
    ):
        click.echo(f"{'mlflow':<{width}}  logged to the job's run")


def _format(value: float) -> str:
    return "n/a (undefined on this data)" if math.isnan(value) else f"{value:.4f}"
