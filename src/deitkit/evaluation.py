"""Evaluate a model on a labelled dataset: Azure ML's metrics, tables and plots in one folder.

The folder has the layout of an MLflow `EvaluationResult` (what Azure ML's evaluation component
writes): `metrics.json` (scalars), `artifacts_metadata.json` and `artifacts/`, so
`mlflow.models.EvaluationResult.load(OUT)` reads it back. Metrics that are undefined on the data
(NaN, e.g. AUC with one class present) are written as JSON `null`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deitkit import plots
from deitkit.calibration import reliability
from deitkit.data.dataset import Example, ImageDataset
from deitkit.data.formats import read_dataset
from deitkit.data.targets import check_known_labels, targets
from deitkit.errors import DataError
from deitkit.inference import Classifier
from deitkit.inference.checkpoint import HISTORY_FILE
from deitkit.inference.scoring import Item, score_batches
from deitkit.metrics import compute_metrics, confusion, per_class_table, top_k_accuracy
from deitkit.progress import progress_bar
from deitkit.report import ReportData, write_report
from deitkit.tasks import Task, check_threshold
from deitkit.tuning import Decisions, check_tuning, decide
from deitkit.workdir import staged_output

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
MODEL_DIR = "mlflow_model"  # the model with the thresholds and temperature decided here
# Top-k accuracy the model card reports, for multiclass models with more labels than k.
TOP_K = 5
TOP_K_METRIC = "top_5_accuracy"
ECE_METRIC = "expected_calibration_error"  # deitkit.calibration.reliability, 15 bins
ARTIFACTS_DIR = "artifacts"
ARTIFACTS_METADATA_FILE = "artifacts_metadata.json"
ACCURACY_TABLE_POINTS = 100  # thresholds in Azure's accuracy_table
_ARTIFACT_CLASSES = {  # MLflow's artifact class per file type, for EvaluationResult.load
    ".json": "mlflow.models.evaluation.artifacts.JsonEvaluationArtifact",
    ".csv": "mlflow.models.evaluation.artifacts.CsvEvaluationArtifact",
    ".png": "mlflow.models.evaluation.artifacts.ImageEvaluationArtifact",
}


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` found and wrote.

    Attributes:
        task: The model's task.
        labels: The model's labels, in output order.
        threshold: The multilabel threshold asked for or packaged (unused for multiclass).
        thresholds: The multilabel threshold of each label scored with (tuned, packaged, or
            `threshold` for every label).
        temperature: The model's calibration temperature after this evaluation.
        metrics: `METRIC_NAMES[task]` -> value (NaN where undefined on this data), then
            `top_5_accuracy` for multiclass models with more than 5 labels and
            `expected_calibration_error`.
        n_scored: Images scored.
        unreadable: (path, reason) for each image that could not be decoded and was left out.
        output: The output folder.
        artifacts: File names written under `output/artifacts/`.
        report: The HTML report.
        model: The model written again with the decisions made here (`--tune-thresholds`,
            `--calibrate`), or None.
        decisions: Thresholds and temperature, with what tuning and calibration changed.
    """

    task: Task
    labels: tuple[str, ...]
    threshold: float
    thresholds: tuple[float, ...]
    temperature: float
    metrics: dict[str, float]
    n_scored: int
    unreadable: tuple[tuple[str, str], ...]
    output: Path
    artifacts: tuple[str, ...] = ()
    report: Path | None = None
    model: Path | None = None
    decisions: Decisions | None = None

    @property
    def primary_metric(self) -> str:
        return self.task.primary_metric


def evaluate(
    classifier: Classifier,
    data: str | Path | ImageDataset,
    output: str | Path,
    *,
    threshold: float | None = None,
    tune_thresholds: bool = False,
    calibrate: bool = False,
    package: str | Path | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
    progress: bool = False,
) -> Evaluation:
    """Predict every image of `data` and write metrics, artifacts and report.html to `output`.

    The output is written whole (`deitkit.workdir.staged_output`): a failure leaves nothing.

    Args:
        classifier: The model.
        data: A dataset, or a folder or file in any layout `read_dataset` reads.
        output: Folder to write; it must not exist or be empty.
        threshold: Multilabel decision threshold for every label; None: the model's (its
            per-label thresholds where it has them).
        tune_thresholds: Choose each label's threshold for its best F1 on `data` (multilabel).
        calibrate: Fit temperature scaling on `data`.
        package: The deitkit package `classifier` was loaded from; with `tune_thresholds` or
            `calibrate`, a copy with the new decisions is written to `output/mlflow_model`.
        history: The training history (Trainer `log_history`) for the report's curves.
        title: The report's heading.
        progress: Show a progress bar.

    Raises:
        DataError: the data cannot be read, is empty, uses labels the model does not know
            (naming them and a file), or has no readable image.
        ConfigError: `threshold` is outside [0, 1], `output` is not new or empty, or
            thresholds are tuned for a multiclass model.
    """
    task = classifier.task
    check_tuning(task, tune_thresholds=tune_thresholds)  # before any work
    if threshold is None:  # the model's own: per label where it has them
        threshold = classifier.threshold
        in_use = classifier.thresholds or (threshold,) * len(classifier.labels)
    else:
        threshold = check_threshold(threshold)
        in_use = (threshold,) * len(classifier.labels)
    dataset = data if isinstance(data, ImageDataset) else read_dataset(data, task=task)
    if len(dataset) == 0:
        raise DataError("the data set holds no images", path=dataset.root)
    check_known_labels(dataset, classifier.labels)
    with staged_output(output, last=METRICS_FILE) as staging:
        examples, probs, unreadable = _predict(classifier, dataset, progress)
        labels = list(classifier.labels)
        y_true = targets(examples, labels, task)
        decisions = decide(
            task,
            labels,
            probs,
            y_true,
            thresholds=in_use,
            temperature=classifier.temperature,
            tune_thresholds=tune_thresholds,
            calibrate=calibrate,
        )
        classifier = classifier.with_decisions(
            thresholds=decisions.thresholds if task.is_multilabel else None,
            temperature=decisions.temperature,
        )
        probs = decisions.probs
        metrics = compute_metrics(
            task, probs, y_true, labels=labels, threshold=decisions.thresholds
        )
        if not task.is_multilabel and len(labels) > TOP_K:
            metrics[TOP_K_METRIC] = top_k_accuracy(probs, y_true, k=TOP_K)
        metrics[ECE_METRIC] = reliability(task, probs, y_true).ece
        (staging / ARTIFACTS_DIR).mkdir()
        _write_json(staging / METRICS_FILE, metrics)
        output = Path(output)
        evaluation = Evaluation(
            task,
            tuple(labels),
            threshold,
            decisions.thresholds,
            decisions.temperature,
            metrics,
            len(examples),
            unreadable,
            output,
            decisions=decisions,
        )
        names = _write_artifacts(
            staging / ARTIFACTS_DIR, evaluation, classifier, dataset, examples, probs, y_true
        )
        # MLflow's EvaluationResult.save format: artifact name -> where it is and how to load it.
        metadata = {
            name: {
                "uri": f"{ARTIFACTS_DIR}/{name}",
                "class_name": _ARTIFACT_CLASSES[Path(name).suffix],
            }
            for name in names
        }
        _write_json(staging / ARTIFACTS_METADATA_FILE, metadata)
        write_report(
            staging / REPORT_FILE,
            _report_data(evaluation, dataset, examples, probs, y_true, history, title),
        )
        model = None
        if package is not None and decisions.changed:
            from deitkit.packaging import with_decisions  # packaging judges with evaluation's code

            with_decisions(
                package,
                staging / MODEL_DIR,
                thresholds=dict(zip(labels, decisions.thresholds, strict=True))
                if task.is_multilabel
                else None,
                temperature=decisions.temperature,
            )
            model = output / MODEL_DIR
    log.info("evaluated %d images of %s into %s", len(examples), dataset.root, output)
    return dataclasses.replace(
        evaluation, artifacts=tuple(names), report=output / REPORT_FILE, model=model
    )


def accuracy_table(probs: np.ndarray, true_bin: np.ndarray, labels: Sequence[str]) -> dict:
    """Azure ML's `accuracy_table` artifact: per class [tp, fp, tn, fn] at 100 thresholds.

    As azureml-metrics computes it: one-vs-rest per class, a probability counts as positive
    when it is >= the threshold; `probability_thresholds` are evenly spaced in [0, 1] and
    `percentile_thresholds` are the percentiles of all probabilities. Unlike Azure, which fills
    classes absent from the data with zeros, every class gets its real counts.
    """
    points = np.linspace(0.0, 1.0, ACCURACY_TABLE_POINTS)
    percentiles = np.percentile(probs.ravel(), points * 100)
    data = {
        "class_labels": list(labels),
        "probability_tables": _confusion_sweep(probs, true_bin, points),
        "percentile_tables": _confusion_sweep(probs, true_bin, percentiles),
        "probability_thresholds": points.tolist(),
        "percentile_thresholds": percentiles.tolist(),
    }
    return {"schema_type": "accuracy_table", "schema_version": "1.0.1", "data": data}


def _confusion_sweep(probs: np.ndarray, true_bin: np.ndarray, thresholds: np.ndarray) -> list:
    n = probs.shape[0]
    tables = []
    for column, truth in zip(probs.T, true_bin.T, strict=True):
        order = np.argsort(column, kind="stable")
        positives_below = np.concatenate([[0], np.cumsum(truth[order])])
        below = np.searchsorted(column[order], thresholds, side="left")  # prob < threshold
        fn = positives_below[below]
        tn = below - fn
        n_pos = int(truth.sum())
        tables.append(np.stack([n_pos - fn, n - n_pos - tn, tn, fn], axis=1).tolist())
    return tables


def _predict(
    classifier: Classifier, dataset: ImageDataset, progress: bool
) -> tuple[list[Example], np.ndarray, tuple[tuple[str, str], ...]]:
    """Probabilities of the readable examples; unreadable ones are logged and left out."""
    examples, chunks, unreadable = [], [], []
    pending = iter(dataset.examples)
    items = (Item(str(e.path), path=e.path) for e in dataset.examples)
    with progress_bar(
        total=len(dataset), unit="img", desc="evaluating", disable=not progress
    ) as bar:
        for batch in score_batches(classifier, items):
            for result in batch:
                example = next(pending)  # items are made from the examples, in order
                if result.probs is None:
                    log.warning("%s: unreadable image left out: %s", example.path, result.error)
                    unreadable.append((str(example.path), result.error))
                else:
                    examples.append(example)
                    chunks.append(result.probs)
            bar.update(len(batch))
    if not examples:
        raise DataError(f"none of the {len(dataset)} images can be read", path=dataset.root)
    return examples, np.stack(chunks), tuple(unreadable)


def _write_artifacts(
    folder: Path,
    evaluation: Evaluation,
    classifier: Classifier,
    dataset: ImageDataset,
    examples: list[Example],
    probs: np.ndarray,
    y_true: np.ndarray,
) -> list[str]:
    """Write every artifact into `folder`; return their file names."""
    return [
        *_write_confusion(folder, evaluation, probs, y_true),
        *_write_accuracy_table(folder, evaluation, probs, y_true),
        *_write_per_class(folder, evaluation, probs, y_true),
        *_write_predictions(folder, evaluation, classifier, dataset.root, examples, probs),
        *_write_summary(folder, evaluation, classifier, dataset),
    ]


def _write_confusion(
    folder: Path, evaluation: Evaluation, probs: np.ndarray, y_true: np.ndarray
) -> list[str]:
    """confusion_matrix.png and Azure's confusion_matrix.json (per label for multilabel)."""
    task, labels = evaluation.task, list(evaluation.labels)
    matrix = confusion(task, probs, y_true, labels=labels, threshold=evaluation.thresholds)
    if task.is_multilabel:
        plots.plot_multilabel_confusion(
            matrix,
            labels,
            folder / "confusion_matrix.png",
            title=f"Confusion per label{_at_threshold(evaluation)}",
        )
    else:
        plots.plot_confusion_matrix(
            matrix, labels, folder / "confusion_matrix.png", title="Confusion matrix"
        )
    confusion_json = {
        "schema_type": "confusion_matrix",
        "schema_version": "1.0.0",
        "data": {"class_labels": labels, "matrix": matrix.tolist()},
    }
    _write_json(folder / "confusion_matrix.json", confusion_json)
    return ["confusion_matrix.png", "confusion_matrix.json"]


def _write_accuracy_table(
    folder: Path, evaluation: Evaluation, probs: np.ndarray, y_true: np.ndarray
) -> list[str]:
    """Azure's accuracy_table.json (see `accuracy_table`)."""
    labels = list(evaluation.labels)
    true_bin = np.eye(len(labels), dtype=np.int8)[y_true] if y_true.ndim == 1 else y_true
    _write_json(folder / "accuracy_table.json", accuracy_table(probs, true_bin, labels))
    return ["accuracy_table.json"]


def _write_per_class(
    folder: Path, evaluation: Evaluation, probs: np.ndarray, y_true: np.ndarray
) -> list[str]:
    """The per-label scores as per_class.csv, per_class.json and the per_class.png chart."""
    task, thresholds = evaluation.task, evaluation.thresholds
    rows = per_class_table(
        task, probs, y_true, labels=list(evaluation.labels), threshold=thresholds
    )
    if task.is_multilabel:
        rows = [{**row, "threshold": t} for row, t in zip(rows, thresholds, strict=True)]
    pd.DataFrame(rows).to_csv(folder / "per_class.csv", index=False)
    per_class = {
        "task": task.value,
        "threshold": evaluation.threshold if task.is_multilabel else None,
        "classes": rows,
    }
    _write_json(folder / "per_class.json", per_class)
    title = f"Scores per label{_at_threshold(evaluation)}"
    plots.plot_per_class(rows, folder / "per_class.png", title=title)
    return ["per_class.csv", "per_class.json", "per_class.png"]


def _write_predictions(
    folder: Path,
    evaluation: Evaluation,
    classifier: Classifier,
    root: Path,
    examples: list[Example],
    probs: np.ndarray,
) -> list[str]:
    """predictions.csv: per scored image its file (relative to the data), true and predicted
    labels (at the classifier's decisions), and probabilities."""
    predictions = classifier.predictions(probs)
    table = pd.DataFrame(
        {
            "file_name": [_relative(e.path, root) for e in examples],
            "true": [json.dumps(list(e.labels)) for e in examples],
            "predicted": [json.dumps(p.predicted()) for p in predictions],
            "probs": [json.dumps([float(str(v)) for v in row]) for row in probs],
        }
    )
    table.to_csv(folder / "predictions.csv", index=False)
    return ["predictions.csv"]


def _write_summary(
    folder: Path, evaluation: Evaluation, classifier: Classifier, dataset: ImageDataset
) -> list[str]:
    """evaluation_summary.json: what was evaluated, on which engine, and what was left out."""
    task = evaluation.task
    engine = classifier.engine_choice
    summary = {
        "task": task.value,
        "labels": list(evaluation.labels),
        "threshold": evaluation.threshold if task.is_multilabel else None,
        "thresholds": dict(zip(evaluation.labels, evaluation.thresholds, strict=True))
        if task.is_multilabel
        else None,
        "temperature": evaluation.temperature,
        "primary_metric": task.primary_metric,
        # The engine the model ran on, chosen as serving and batch scoring choose it.
        "engine": {"name": engine.name, "reason": engine.reason, "timings_ms": engine.timings},
        "precision": {"name": classifier.precision.name, "reason": classifier.precision.reason},
        "n_images": len(dataset),
        "n_scored": evaluation.n_scored,
        "unreadable": [{"path": p, "reason": r} for p, r in evaluation.unreadable],
        "data": str(dataset.root),
        "layout": dataset.layout,
    }
    _write_json(folder / "evaluation_summary.json", summary)
    return ["evaluation_summary.json"]


def _report_data(
    evaluation: Evaluation,
    dataset: ImageDataset,
    examples: list[Example],
    probs: np.ndarray,
    y_true: np.ndarray,
    history: Sequence[Mapping[str, Any]] | None,
    title: str | None,
) -> ReportData:
    """What report.html shows for this evaluation."""
    decisions = evaluation.decisions
    facts = [
        ("data", f"{dataset.root} ({dataset.layout})"),
        ("images", f"{evaluation.n_scored} scored of {len(dataset)}"),
        ("task", f"{evaluation.task.value}, {len(evaluation.labels)} labels"),
    ]
    if evaluation.unreadable:
        facts.append(
            ("unreadable", f"{len(evaluation.unreadable)} left out (evaluation_summary.json)")
        )
    if evaluation.temperature != 1.0:
        facts.append(("temperature", f"{evaluation.temperature:.3g}"))
    return ReportData(
        title=title or f"Evaluation on {dataset.root.name}",
        task=evaluation.task,
        labels=evaluation.labels,
        metrics=evaluation.metrics,
        probs=probs,
        y_true=y_true,
        images=tuple(e.path for e in examples),
        image_names=tuple(_relative(e.path, dataset.root) for e in examples),
        thresholds=evaluation.thresholds,
        tuning=decisions.tuning if decisions else None,
        calibration=decisions.calibration if decisions else None,
        history=history,
        facts=tuple(facts),
    )


def read_history(model: str | Path) -> list[dict] | None:
    """The training history a fine-tuned package carries (`HISTORY_FILE`), or None."""
    from deitkit.inference.mlflow_layouts import model_files

    path = model_files(model).weights / HISTORY_FILE
    if not path.is_file():
        return None
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        log.warning("%s: training history not shown: %s", path, err)
        return None
    return history if isinstance(history, list) else None


def _at_threshold(evaluation: Evaluation) -> str:
    """A chart title's suffix naming the multilabel threshold(s); empty for multiclass."""
    if not evaluation.task.is_multilabel:
        return ""
    if len(set(evaluation.thresholds)) > 1:
        return " at per-label thresholds"
    return f" at threshold {evaluation.thresholds[0]:g}"


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _write_json(path: Path, value: object) -> None:
    """Strict JSON: NaN (an undefined metric) becomes null."""
    path.write_text(json.dumps(_nan_to_none(value), indent=2) + "\n", encoding="utf-8")


def _nan_to_none(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
