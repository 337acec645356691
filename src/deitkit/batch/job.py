"""`deitkit batch-score` as a function: a folder or CSV in, a predictions CSV out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from deitkit.batch.items import BatchInput, Item
from deitkit.batch.output import PredictionsWriter, to_rows
from deitkit.inference import Classifier
from deitkit.inference.scoring import score_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: rows in the output, of which kept from before, scored now, and errors."""

    output: Path
    rows: int
    kept: int
    scored: int
    errors: int


def batch_score(
    classifier: Classifier,
    source: str | Path,
    output: str | Path,
    *,
    resume: bool = False,
    threshold: float | None = None,
    progress: bool = False,
) -> BatchSummary:
    """Score every image of `source` into the predictions CSV `output`.

    Items go through the scoring pipeline (`deitkit.inference.scoring`): decoded one by one and
    predicted `classifier.max_batch_size` at a time; an item that cannot be decoded gets a row
    with the reason in `error`, and the run goes on. The output
    appears only when the run completes (see `PredictionsWriter`).

    Args:
        classifier: The model.
        source: A folder of image files or a CSV with an `image` column (see `BatchInput`).
        output: The CSV to write, header `file_name,predicted,probs,labels,error`.
        resume: Keep the rows a previous run scored without error and skip their items.
        threshold: Multilabel threshold of `predicted`; None: the model's.
        progress: Show a progress bar.

    Raises:
        ConfigError: `source` or `output` is unusable.
        DataError: a CSV cannot be parsed, or the file resumed from is not a predictions CSV.
    """
    items = BatchInput(source)
    errors = 0
    with PredictionsWriter(output, resume=resume) as writer:
        kept = writer.kept.total()
        total = len(items) if progress else None
        with tqdm(total=total, unit="img", desc="scoring", disable=not progress) as bar:
            for batch in score_batches(classifier, _pending(items, writer.kept.copy(), bar)):
                rows = to_rows(classifier, batch, threshold=threshold)
                writer.write(rows)
                errors += sum(1 for row in rows if row.error)
                bar.update(len(batch))
        scored = writer.written
    summary = BatchSummary(Path(output), kept + scored, kept, scored, errors)
    log.info("batch-score: %s", summary)
    return summary


def _pending(items: BatchInput, kept: dict[str, int], bar: tqdm) -> Iterator[Item]:
    """The items not yet in the output; kept file names are matched once each."""
    for item in items:
        if kept.get(item.name, 0) > 0:
            kept[item.name] -= 1
            bar.update(1)
            continue
        yield item
