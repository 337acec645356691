"""Package time: which engines may serve a model, judged against torch-fp32 on validation data.

Each reduced-precision engine (and onnx-fp32) scores the validation set through the shared
scoring path (`deitkit.inference.scoring`, as evaluation and serving run it); it is allowed
when its top-1 answers (multilabel: every label's decisions) agree with torch-fp32's on at
least 99.5 % of the images and its primary metric loses at most 0.2 points. Without
validation data only the fp32 engines and bf16 are allowed. The verdicts go into the package's
engines.json, which every loader reads (`deitkit.inference.engines.record`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from deitkit.data.dataset import ImageDataset
from deitkit.data.targets import check_known_labels, targets
from deitkit.inference import Classifier
from deitkit.inference.engines import (
    ENGINES,
    ONNX_FP32,
    REFERENCE,
    TORCH_BF16,
    EngineRecord,
    Verdict,
    engine_offers,
)
from deitkit.inference.engines.record import MAX_METRIC_LOSS_POINTS, MIN_AGREEMENT
from deitkit.inference.scoring import Item, score_items
from deitkit.inference.threads import configure_threads
from deitkit.metrics import compute_metrics

log = logging.getLogger(__name__)


def decide_engines(
    classifier: Classifier,
    folder: Path,
    *,
    export: dict[str, dict[str, Any]],
    validation: ImageDataset | None = None,
) -> EngineRecord:
    """Judge every engine this machine runs for the model in `folder`.

    Args:
        classifier: The model on torch-fp32, loaded from `folder`.
        folder: The package's checkpoint folder, with the ONNX export if it shipped.
        export: `export_onnx`'s outcome, kept in the record.
        validation: Labelled images (labels the model knows); None: no data to judge on.

    Raises:
        DataError: the validation data uses a label the model does not know, or none of its
            images can be read.
    """
    found = engine_offers(
        classifier.model, folder, device=classifier.device, threads=configure_threads()
    )
    verdicts: dict[str, Verdict] = {}
    for name in ENGINES:
        if name in found.missing:
            verdicts[name] = Verdict(False, f"not available here: {found.missing[name]}")
    if validation is None:
        log.warning(
            "no validation set: only fp32 engines and bf16 may serve this model (int8 engines "
            "are allowed only after agreeing with fp32 on validation data)"
        )
        for name in ENGINES:
            verdicts.setdefault(name, _without_data(name, export))
        return EngineRecord(verdicts, None, export)
    check_known_labels(validation, classifier.labels)
    items = [Item(str(example.path), path=example.path) for example in validation.examples]
    reference = _probs(classifier, items)
    kept = [i for i, probs in enumerate(reference) if probs is not None]
    if not kept:
        from deitkit.errors import DataError

        raise DataError(
            f"none of the {len(items)} validation images can be read", path=validation.root
        )
    examples = [validation.examples[i] for i in kept]
    y_true = targets(examples, classifier.labels, classifier.task)
    ref_probs = np.stack([reference[i] for i in kept])
    ref_metric = _metric(classifier, ref_probs, y_true)
    verdicts[REFERENCE] = Verdict(True, "the reference", 1.0, None, ref_metric, 0.0)
    for name, offer in found.offers.items():
        if name in verdicts:
            continue
        if offer.slow:
            verdicts[name] = _not_judged(name, offer.slow)
            continue
        log.info("judging %s on %d validation images", name, len(kept))
        candidate = classifier.with_engine(offer.build())
        probs = _probs(candidate, [items[i] for i in kept])
        if any(row is None for row in probs):
            verdicts[name] = Verdict(False, "it could not score every image fp32 scored")
            continue
        verdicts[name] = _judge(classifier, np.stack(probs), ref_probs, y_true, ref_metric)
        log.info("%s: %s", name, verdicts[name].reason)
    validation_info = {
        "data": str(validation.root),
        "layout": validation.layout,
        "images": len(kept),
        "unreadable": len(items) - len(kept),
        "primary_metric": classifier.task.primary_metric,
        "threshold": classifier.threshold if classifier.task.is_multilabel else None,
    }
    return EngineRecord(verdicts, validation_info, export)


def _probs(classifier: Classifier, items: list[Item]) -> list[np.ndarray | None]:
    return [scored.probs for scored in score_items(classifier, items)]


def _metric(classifier: Classifier, probs: np.ndarray, y_true: np.ndarray) -> float:
    metrics = compute_metrics(
        classifier.task,
        probs,
        y_true,
        labels=list(classifier.labels),
        threshold=classifier.threshold,
    )
    return float(metrics[classifier.task.primary_metric])


def _judge(
    classifier: Classifier,
    probs: np.ndarray,
    reference: np.ndarray,
    y_true: np.ndarray,
    ref_metric: float,
) -> Verdict:
    """Allowed at MIN_AGREEMENT and at most MAX_METRIC_LOSS_POINTS lost; the figures, and why."""
    agreement = float(np.mean(probs.argmax(1) == reference.argmax(1)))
    metric = _metric(classifier, probs, y_true)
    change = (metric - ref_metric) * 100
    label_agreement = None
    if classifier.task.is_multilabel:
        threshold = classifier.threshold
        same = (probs >= threshold) == (reference >= threshold)
        label_agreement = {
            label: float(share)
            for label, share in zip(classifier.labels, same.mean(axis=0), strict=True)
        }
        worst = min(label_agreement, key=label_agreement.__getitem__)
        agrees = label_agreement[worst] >= MIN_AGREEMENT
        what = f"label {worst!r} decisions agree {label_agreement[worst]:.1%}"
    else:
        agrees, what = agreement >= MIN_AGREEMENT, f"top-1 agreement {agreement:.1%}"
    primary = classifier.task.primary_metric
    loss_ok = -change <= MAX_METRIC_LOSS_POINTS + 1e-9
    figures = f"{what}, {primary} {metric:.4f} ({change:+.2f} points)"
    if agrees and loss_ok:
        reason = (
            f"{figures}: within {MIN_AGREEMENT:.1%} agreement and {MAX_METRIC_LOSS_POINTS} points"
        )
    else:
        broken = [
            *([f"agreement under {MIN_AGREEMENT:.1%}"] if not agrees else []),
            *([f"loses over {MAX_METRIC_LOSS_POINTS} points"] if not loss_ok else []),
        ]
        reason = f"{figures}: {' and '.join(broken)}"
    return Verdict(agrees and loss_ok, reason, agreement, label_agreement, metric, change)


def _without_data(name: str, export: dict[str, dict[str, Any]]) -> Verdict:
    if name == REFERENCE:
        return Verdict(True, "the reference")
    if name == ONNX_FP32:
        return Verdict(True, f"no validation set; the export {export[ONNX_FP32]['reason']}")
    if name == TORCH_BF16:
        return Verdict(True, "no validation set; bf16 is allowed as fp32 is")
    return Verdict(False, "no validation set to judge it on")


def _not_judged(name: str, slow: str) -> Verdict:
    if name == TORCH_BF16:
        # Its answers are the same wherever it runs; where it is native it is allowed as it is
        # without a validation set.
        return Verdict(True, f"not judged where packaged ({slow}); allowed as without data")
    return Verdict(False, f"not judged where packaged ({slow})")
