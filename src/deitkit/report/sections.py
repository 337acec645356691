"""The report's sections, in page order, each built from `ReportData` and its outcomes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deitkit.calibration import reliability
from deitkit.report import curves, figures, gallery, history
from deitkit.report.data import ReportData
from deitkit.report.outcomes import Outcomes
from deitkit.report.page import Column, Section, esc, image, number, paragraph, table

# Tables longer than this are a wall no one reads; past it a table keeps the worst rows and
# says so (the evaluation's JSON/CSV artifacts hold every label).
MAX_ROWS = 100
MAX_PAIRS = 10  # confused pairs, missed and falsely predicted labels
_MAX_NAMES = 6  # labels named in one gallery caption


def build(data: ReportData, outcomes: Outcomes) -> list[Section]:
    """Every section that applies to `data`, in page order."""
    sections = [
        metrics_section(data),
        confusion_section(data, outcomes),
        per_class_section(data, outcomes),
        curves_section(data, outcomes),
        calibration_section(data),
        confused_section(data, outcomes),
        mistakes_section(data, outcomes),
    ]
    if data.task.is_multilabel:
        sections.append(thresholds_section(data))
    # An empty history (or none: the model was not trained by deitkit) has nothing to draw.
    if data.history:
        sections.append(training_section(data))
    return sections


def metrics_section(data: ReportData) -> Section:
    primary = data.primary_metric
    # The primary metric leads, top-5 accuracy (where computed) follows, the rest keep order.
    order = [primary, *(["top_5_accuracy"] if "top_5_accuracy" in data.metrics else [])]
    order += [name for name in data.metrics if name not in order]
    rows = [(name, number(data.metrics.get(name, float("nan")))) for name in order]
    body = table(
        [Column("metric", is_name=True), Column("value")],
        rows,
        highlight=[name == primary for name in order],
    )
    note = f"Primary metric: {primary}. n/a: undefined on this data (e.g. a class never occurs)."
    return Section("metrics", "Metrics", body + paragraph(note, css="caption"))


def confusion_section(data: ReportData, outcomes: Outcomes) -> Section:
    n = len(data.labels)
    if data.task.is_multilabel:
        picture = figures.multilabel_confusion(outcomes.confusion, data.labels)
        shown = min(n, figures.MAX_GRID)
        note = "One 2x2 matrix per label, at that label's threshold."
        if shown < n:
            note += f" The first {shown} of {n} labels are drawn; the per-class table has all."
    else:
        picture = figures.confusion_matrix(outcomes.confusion, data.labels)
        note = "Rows are true classes, columns predicted ones."
        if n > figures.MAX_ANNOTATED:
            note += f" Cells are not numbered above {figures.MAX_ANNOTATED} classes."
        if n > figures.MAX_TICKS:
            note += f" Class names are left out above {figures.MAX_TICKS} classes."
    return Section(
        "confusion",
        "Confusion matrix",
        image(picture, "confusion matrix") + paragraph(note, css="caption"),
    )


def per_class_section(data: ReportData, outcomes: Outcomes) -> Section:
    rows = list(enumerate(outcomes.per_class))
    note = ""
    if len(rows) > MAX_ROWS:
        rows = sorted(rows, key=lambda r: (r[1]["f1"], r[0]))[:MAX_ROWS]
        rows.sort(key=lambda r: r[0])
        note = f"The {MAX_ROWS} of {len(outcomes.per_class)} labels with the lowest F1."
    multilabel = data.task.is_multilabel
    columns = [Column("label", is_name=True)]
    columns += [Column("threshold")] if multilabel else []
    columns += [Column(h) for h in ("precision", "recall", "F1", "support", "predicted")]
    cells = [
        [
            row["label"],
            *([number(data.thresholds[i], 3)] if multilabel else []),
            number(row["precision"]),
            number(row["recall"]),
            number(row["f1"]),
            str(row["support"]),
            str(row["predicted"]),
        ]
        for i, row in rows
    ]
    rule = "each label at its threshold" if multilabel else "the most probable class"
    caption = f"Predictions: {rule}. Support: true examples; predicted: predicted examples."
    body = (paragraph(note) if note else "") + table(columns, cells)
    return Section("per-class", "Per-class scores", body + paragraph(caption, css="caption"))


def curves_section(data: ReportData, outcomes: Outcomes) -> Section:
    probs = np.asarray(data.probs, dtype=np.float64)
    choice = curves.choose(outcomes.true_bin, probs)
    caption = curves.caption(choice, data.labels)
    if not choice.drawn:
        body = paragraph("No label has both positive and negative examples: no curve exists.")
        return Section("curves", "ROC and precision-recall curves", body + paragraph(caption))
    thresholds = data.thresholds if data.task.is_multilabel else None
    picture = figures.curves(choice, outcomes.true_bin, probs, data.labels, thresholds)
    body = image(picture, "ROC and precision-recall curves") + paragraph(caption, css="caption")
    return Section("curves", "ROC and precision-recall curves", body)


def calibration_section(data: ReportData) -> Section:
    after = reliability(data.task, data.probs, data.y_true)
    multilabel = data.task.is_multilabel
    if data.calibration is None:
        panels = [("reliability", after)]
        summary = f"Expected calibration error (ECE): {after.ece:.4f}."
    else:
        before = reliability(data.task, data.calibration.probs_before, data.y_true)
        panels = [("before", before), ("after temperature scaling", after)]
        summary = (
            f"ECE {before.ece:.4f} → {after.ece:.4f} with temperature "
            f"{data.calibration.temperature:.4f} (probabilities = activation(logits / T))."
        )
    what = (
        "every (image, label) pair's probability against how often the label is present"
        if multilabel
        else "each image's top probability against how often that class is right"
    )
    caption = (
        f"Bars: {what}, in {len(after.count)} equal-width bins; the dashed diagonal is perfect "
        "calibration; counts per bin below. ECE is the count-weighted mean gap."
    )
    body = (
        paragraph(summary)
        + image(figures.reliability(panels, multilabel=multilabel), "reliability diagram")
        + paragraph(caption, css="caption")
    )
    return Section("calibration", "Calibration", body)


def confused_section(data: ReportData, outcomes: Outcomes) -> Section:
    if data.task.is_multilabel:
        return _missed_section(data, outcomes)
    matrix = outcomes.confusion
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    true_ids, pred_ids = np.nonzero(off)
    counts = off[true_ids, pred_ids]
    # Most images first; ties in label order so the table is the same run after run.
    order = np.lexsort((pred_ids, true_ids, -counts))[:MAX_PAIRS]
    totals = matrix.sum(axis=1)
    rows = [
        [
            data.labels[true_ids[k]],
            data.labels[pred_ids[k]],
            str(counts[k]),
            f"{counts[k] / totals[true_ids[k]]:.1%}",
        ]
        for k in order
    ]
    title = "Most confused pairs"
    if not rows:
        return Section("confused-pairs", title, paragraph("No image was misclassified."))
    columns = [
        Column("true class", is_name=True),
        Column("predicted as", is_name=True),
        Column("images"),
        Column("share of the true class"),
    ]
    note = f"The {len(rows)} most frequent (true, predicted) pairs off the diagonal."
    return Section("confused-pairs", title, table(columns, rows) + paragraph(note, css="caption"))


def _missed_section(data: ReportData, outcomes: Outcomes) -> Section:
    matrices = outcomes.confusion  # (C, 2, 2): [[tn, fp], [fn, tp]]
    fn, fp = matrices[:, 1, 0], matrices[:, 0, 1]
    positives, negatives = matrices[:, 1].sum(axis=1), matrices[:, 0].sum(axis=1)
    parts = []
    for heading, counts, base, base_name in (
        ("Most often missed (false negatives)", fn, positives, "share of its positives"),
        ("Most often falsely predicted (false positives)", fp, negatives, "share of its negatives"),
    ):
        order = [int(i) for i in np.lexsort((np.arange(len(counts)), -counts)) if counts[i] > 0]
        rows = [
            [data.labels[i], str(counts[i]), f"{counts[i] / base[i]:.1%}"]
            for i in order[:MAX_PAIRS]
        ]
        parts.append(f"<h3>{esc(heading)}</h3>")
        if rows:
            columns = [Column("label", is_name=True), Column("images"), Column(base_name)]
            parts.append(table(columns, rows))
        else:
            parts.append(paragraph("None."))
    return Section("confused-pairs", "Most missed and falsely predicted labels", "".join(parts))


def mistakes_section(data: ReportData, outcomes: Outcomes) -> Section:
    title = "Worst mistakes"
    mistakes = gallery.worst_mistakes(data, outcomes)
    if not mistakes:
        return Section("mistakes", title, paragraph("Every image was predicted correctly."))
    multilabel = data.task.is_multilabel
    figures_html = []
    for mistake in mistakes:
        thumb = gallery.thumbnail(data.images[mistake.index])
        if thumb.data is not None:
            picture = image(thumb.data, mistake.name, mime=thumb.mime, css="thumb")
        else:
            picture = (
                f'<div class="placeholder" title="{esc(thumb.error)}">'
                f"image could not be opened</div>"
            )
        score = f"error {mistake.score:.2f}" if multilabel else f"score {mistake.score:.3f}"
        lines = [
            f"<span><b>{esc(mistake.name)}</b></span>",
            f"<span>true: {esc(_listed(mistake.true))}</span>",
            f"<span>predicted: {esc(_listed(mistake.predicted))}</span>",
            f"<span>{esc(score)}</span>",
        ]
        figures_html.append(
            f'<figure class="mistake">{picture}<figcaption>{"".join(lines)}</figcaption></figure>'
        )
    rule = (
        "largest summed error |truth − probability| among images whose predicted labels differ"
        if multilabel
        else "most confident wrong predictions (score: the predicted class's probability)"
    )
    total = int((outcomes.pred_bin != outcomes.true_bin).any(axis=1).sum())
    caption = f"{len(mistakes)} of {total} wrong images: the {rule}."
    body = f'<div class="gallery">{"".join(figures_html)}</div>' + paragraph(caption, css="caption")
    return Section("mistakes", title, body)


def thresholds_section(data: ReportData) -> Section:
    title = "Decision thresholds"
    tuning = data.tuning
    indices = list(range(len(data.labels)))
    note = ""
    if tuning is None:
        columns = [Column("label", is_name=True), Column("threshold")]
        rows = [[data.labels[i], number(data.thresholds[i], 3)] for i in indices[:MAX_ROWS]]
        summary = "The threshold in use per label (a label is predicted at or above it)."
        if len(indices) > MAX_ROWS:
            note = f"The first {MAX_ROWS} of {len(indices)} labels."
    else:
        change = np.asarray(tuning.f1_after) - np.asarray(tuning.f1_before)
        if len(indices) > MAX_ROWS:
            # The labels tuning changed most are the ones worth reading.
            indices = sorted(sorted(indices, key=lambda i: (-abs(change[i]), i))[:MAX_ROWS])
            note = f"The {MAX_ROWS} of {len(data.labels)} labels whose F1 changed most."
        columns = [Column("label", is_name=True)] + [
            Column(h) for h in ("before", "after", "F1 before", "F1 after", "F1 change")
        ]
        rows = [
            [
                data.labels[i],
                number(tuning.before[i], 3),
                number(tuning.after[i], 3),
                number(tuning.f1_before[i]),
                number(tuning.f1_after[i]),
                f"{change[i]:+.4f}",
            ]
            for i in indices
        ]
        summary = (
            f"Thresholds tuned per label on this data: macro F1 "
            f"{np.mean(tuning.f1_before):.4f} → {np.mean(tuning.f1_after):.4f}."
        )
    body = paragraph(summary) + (paragraph(note) if note else "") + table(columns, rows)
    return Section("thresholds", title, body)


def training_section(data: ReportData) -> Section:
    title = "Training"
    losses, metric = history.read(data.history or (), data.primary_metric)
    if not losses and metric is None:
        text = "The training history holds no loss or evaluation metric."
        return Section("training", title, paragraph(text))
    names = [s.name for s in losses] + ([metric.name] if metric else [])
    caption = f"From the trainer's log history: {', '.join(names)}."
    body = image(figures.training(losses, metric), "training curves") + paragraph(
        caption, css="caption"
    )
    return Section("training", title, body)


def _listed(labels: Sequence[str]) -> str:
    if not labels:
        return "(none)"
    shown = ", ".join(labels[:_MAX_NAMES])
    more = len(labels) - _MAX_NAMES
    return shown + (f" +{more} more" if more > 0 else "")
