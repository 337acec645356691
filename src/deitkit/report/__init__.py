"""A self-contained HTML evaluation report: one file, every picture inside, nothing fetched."""

from __future__ import annotations

from pathlib import Path

from deitkit.report import sections
from deitkit.report.data import Calibration, ReportData, ThresholdTuning
from deitkit.report.outcomes import decide
from deitkit.report.page import document
from deitkit.workdir import write_text_atomically

__all__ = ["Calibration", "ReportData", "ThresholdTuning", "render_report", "write_report"]


def render_report(data: ReportData) -> str:
    """The report of `data` as one HTML document (see `write_report`)."""
    outcomes = decide(data)
    return document(data.title, data.facts, sections.build(data, outcomes))


def write_report(path: Path, data: ReportData) -> Path:
    """Write the evaluation report of `data` to `path` as one self-contained HTML file.

    Sections, in order: metrics, confusion, per-class, curves, calibration, confused-pairs,
    mistakes, thresholds (multilabel only) and training (when `data.history` has entries).
    Every picture is an inline data: URI and the styles are inline: the file opens offline,
    can be mailed or attached to a run as is, and loads nothing from anywhere.

    The page is rendered in memory first, then written to a staging file in the same folder
    and renamed over `path`, so a reader never sees half a report and a failure leaves any
    earlier report in place.

    Returns:
        `path`.

    Raises:
        DataError: the arrays, images, names or thresholds of `data` disagree in shape.
    """
    path = Path(path)
    text = render_report(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text)
    return path
