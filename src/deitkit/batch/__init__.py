"""Batch scoring: a folder of images or a base64 CSV in, a predictions CSV out (local or Azure)."""

from deitkit.batch.items import IMAGE_COLUMN, NAME_COLUMN, BatchInput, Item, frame_items, path_items
from deitkit.batch.job import BatchSummary, batch_score
from deitkit.batch.output import HEADER, PredictionsWriter, Row, format_line, read_rows, to_rows

__all__ = [
    "HEADER",
    "IMAGE_COLUMN",
    "NAME_COLUMN",
    "BatchInput",
    "BatchSummary",
    "Item",
    "PredictionsWriter",
    "Row",
    "batch_score",
    "format_line",
    "frame_items",
    "path_items",
    "read_rows",
    "to_rows",
]
