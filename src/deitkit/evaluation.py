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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deitkit import plots
from deitkit.data.dataset import Example, ImageDataset
from deitkit.data.formats import read_dataset
from deitkit.errors import DataError
from deitkit.inference import Classifier
from deitkit.inference.scoring import Item, score_batches
from deitkit.metrics import compute_metrics, confusion, per_class_table
from deitkit.tasks import Task, check_threshold

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
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
        threshold: The multilabel decision threshold used (unused for multiclass).
        metrics: `METRIC_NAMES[task]` -> value (NaN where undefined on this data).
        n_scored: Images scored.
        unreadable: (path, reason) for each image that could not be decoded and was left out.
        output: The output folder.
        artifacts: File names written under `output/artifacts/`.
    """

    task: Task
    labels: tuple[str, ...]
    threshold: float
    metrics: dict[str, float]
    n_scored: int
    unreadable: tuple[tuple[str, str], ...]
    output: Path
    artifacts: tuple[str, ...]

    @property
    def primary_metric(self) -> str:
        return self.task.primary_metric


def evaluate(
    classifier: Classifier,
    data: str | Path,
    output: str | Path,
    *,
    threshold: float | None = None,
    progress: bool = False,
) -> Evaluation:
    """Predict every image of `data` and write metrics and artifacts to `output`.

    Args:
        classifier: The model.
        data: A dataset in any layout `deitkit.data.formats.read_dataset` reads.
        output: Folder to write (created; files of a previous evaluation are replaced).
        threshold: Multilabel decision threshold; None: the model's.
        progress: Show a progress bar.

    Raises:
        DataError: the data cannot be read, uses labels the model does not know (naming them
            and a file), or has no readable image.
        ConfigError: `threshold` is outside [0, 1].
    """
    task = classifier.task
    threshold = classifier.threshold if threshold is None else check_threshold(threshold)
    dataset = read_dataset(data, task=task)
    check_known_labels(dataset, classifier.labels)
    examples, probs, unreadable = _predict(classifier, dataset, progress)
    labels = list(classifier.labels)
    y_true = targets(examples, labels, task)
    metrics = compute_metrics(task, probs, y_true, labels=labels, threshold=threshold)

    output = Path(output)
    (output / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(output / METRICS_FILE, metrics)
    evaluation = Evaluation(
        task, tuple(labels), threshold, metrics, len(examples), unreadable, output, ()
    )
    names = _write_artifacts(evaluation, classifier, dataset, examples, probs, y_true)
    # MLflow's EvaluationResult.save format: artifact name -> where it is and how to load it.
    metadata = {
        name: {"uri": f"{ARTIFACTS_DIR}/{name}", "class_name": _ARTIFACT_CLASSES[Path(name).suffix]}
        for name in names
    }
    _write_json(output / ARTIFACTS_METADATA_FILE, metadata)
    log.info("evaluated %d images of %s into %s", len(examples), data, output)
    return dataclasses.replace(evaluation, artifacts=tuple(names))


def check_known_labels(dataset: ImageDataset, labels: Sequence[str]) -> None:
    """Raise DataError if the data uses a label the model does not have, naming a file."""
    known = set(labels)
    unknown: dict[str, Example] = {}
    for example in dataset.examples:
        for label in example.labels:
            if label not in known:
                unknown.setdefault(label, example)
    if not unknown:
        return
    label, example = next(iter(unknown.items()))
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels)} in all)" if len(labels) > 20 else "")
    others = sorted(set(unknown) - {label})
    more = f"; other unknown labels: {', '.join(map(repr, others))}" if others else ""
    raise DataError(
        f"label {label!r} (from {example.origin}) is not one of the model's labels ({shown}){more}",
        path=example.path,
    )


def targets(examples: Sequence[Example], labels: Sequence[str], task: Task) -> np.ndarray:
    """Class ids (N,) for multiclass, or an (N, C) 0/1 indicator for multilabel."""
    index = {label: i for i, label in enumerate(labels)}
    if task.is_multilabel:
        indicator = np.zeros((len(examples), len(labels)), dtype=np.int8)
        for row, example in enumerate(examples):
            indicator[row, [index[label] for label in example.labels]] = 1
        return indicator
    return np.array([index[example.labels[0]] for example in examples], dtype=np.int64)


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
    with tqdm(total=len(dataset), unit="img", desc="evaluating", disable=not progress) as bar:
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
    evaluation: Evaluation,
    classifier: Classifier,
    dataset: ImageDataset,
    examples: list[Example],
    probs: np.ndarray,
    y_true: np.ndarray,
) -> list[str]:
    """Write every artifact into `output/artifacts/`; return their file names."""
    folder = evaluation.output / ARTIFACTS_DIR
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
    task, labels, threshold = evaluation.task, list(evaluation.labels), evaluation.threshold
    matrix = confusion(task, probs, y_true, labels=labels, threshold=threshold)
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
    task, threshold = evaluation.task, evaluation.threshold
    rows = per_class_table(task, probs, y_true, labels=list(evaluation.labels), threshold=threshold)
    pd.DataFrame(rows).to_csv(folder / "per_class.csv", index=False)
    per_class = {
        "task": task.value,
        "threshold": threshold if task.is_multilabel else None,
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
    labels, and probabilities."""
    threshold = evaluation.threshold
    predictions = classifier.predictions(probs)
    table = pd.DataFrame(
        {
            "file_name": [_relative(e.path, root) for e in examples],
            "true": [json.dumps(list(e.labels)) for e in examples],
            "predicted": [json.dumps(p.predicted(threshold=threshold)) for p in predictions],
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


def _at_threshold(evaluation: Evaluation) -> str:
    """A chart title's suffix naming the multilabel threshold; empty for multiclass."""
    return f" at threshold {evaluation.threshold:g}" if evaluation.task.is_multilabel else ""


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
