"""The Azure ML batch deployment driver: `init()` loads the model, `run(mini_batch)` scores files.

Azure ML calls `init()` once per worker process and `run()` once per mini-batch: a list of file
paths for a `uri_folder` input (`mini_batch_size` files each), or a pandas DataFrame for tabular
(MLTable) input. Image files are scored one row each; a `.csv` file contributes one row per
record of its `image` column (base64), named by its `file_name` column or `<csv name>:<row>`.

`run()` returns a list of strings, each one CSV record in the column order of `HEADER`
(`file_name,predicted,probs,labels,error`). With `output_action: append_row`, Azure ML appends
what `run()` returns to `output_file_name` (predictions.csv) one element per line, as-is, and
without a header. Returning ready-made CSV records, rather than a DataFrame whose separator and
quoting would be Azure's choice, keeps that file readable as the same CSV that `deitkit
batch-score` writes: `pandas.read_csv(path, names=HEADER)`. Azure counts each returned element
as one item that succeeded; a bad image still gets its row (with `error` set), so
`error_threshold: 0` does not fail the job over one corrupt file, and the row says what was
wrong with it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from deitkit.batch.items import frame_items, path_items
from deitkit.batch.output import HEADER, format_line, to_rows
from deitkit.errors import ConfigError
from deitkit.inference import Classifier, load_classifier
from deitkit.inference.packaged import MODEL_DIR_ENV, find_model_dir
from deitkit.inference.scoring import score_batches

__all__ = ["HEADER", "find_model_dir", "init", "run"]

log = logging.getLogger(__name__)

_classifier: Classifier | None = None


def init(model_dir: str | Path | None = None) -> None:
    """Load the model once: from `model_dir`, else from $AZUREML_MODEL_DIR.

    Raises:
        ConfigError: neither is set, or no model is found there.
    """
    global _classifier
    root = model_dir or os.environ.get(MODEL_DIR_ENV)
    if not root:
        raise ConfigError(f"{MODEL_DIR_ENV} is not set; Azure ML sets it to the model's folder")
    path = find_model_dir(root)
    _classifier = load_classifier(path)
    log.info("batch driver: loaded %s: %s", path, _classifier)


def run(mini_batch: list[str] | pd.DataFrame) -> list[str]:
    """Score one mini-batch; one CSV record (see `HEADER`) per image, bad ones included."""
    if _classifier is None:
        raise RuntimeError("run() called before init()")
    if isinstance(mini_batch, pd.DataFrame):
        items = frame_items(mini_batch)
    else:
        items = path_items(mini_batch)
    rows = []
    for batch in score_batches(_classifier, items):
        rows.extend(to_rows(_classifier, batch))
    errors = [row for row in rows if row.error]
    for row in errors:
        log.warning("batch driver: skipped %s: %s", row.file_name, row.error)
    log.info("batch driver: %d rows, %d skipped", len(rows), len(errors))
    return [format_line(row) for row in rows]
