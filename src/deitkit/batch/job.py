"""`deitkit batch-score` as a function: a folder or CSV in, a predictions CSV out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from deitkit.batch.items import BatchInput, Item
from deitkit.batch.output import PredictionsWriter, to_rows
from deitkit.errors import ConfigError
from deitkit.inference import Classifier
from deitkit.inference.scoring import score_batches
from deitkit.progress import progress_bar

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
    notify: Callable[[str], None] = log.warning,
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
        progress: Show progress: a bar in a terminal, else a line per tenth of the images.
        notify: Receives one-line notices, such as a torn last row dropped on `resume`.

    Raises:
        ConfigError: `source` or `output` is unusable, or `output` lies inside `source`.
        DataError: a CSV cannot be parsed, or the file resumed from is not a predictions CSV.
    """
    items = BatchInput(source)
    _check_apart(items.path, Path(output))
    errors = 0
    with PredictionsWriter(output, resume=resume) as writer:
        for notice in writer.notices:
            notify(notice)
        kept = writer.kept.total()
        total = len(items) if progress else None
        with progress_bar(total=total, unit="img", desc="scoring", disable=not progress) as bar:
            for batch in score_batches(classifier, _pending(items, writer.kept.copy(), bar)):
                rows = to_rows(classifier, batch, threshold=threshold)
                writer.write(rows)
                errors += sum(1 for row in rows if row.error)
                bar.update(len(batch))
        scored = writer.written
    summary = BatchSummary(Path(output), kept + scored, kept, scored, errors)
    log.info("batch-score: %s", summary)
    return summary


def _check_apart(source: Path, output: Path) -> None:
    """Refuse an output that would replace the input, or be read as input by the next run."""
    src, out = Path(os.path.realpath(source)), Path(os.path.realpath(output))
    if out == src or (source.is_dir() and out.is_relative_to(src)):
        raise ConfigError(
            f"--output {output} lies inside --input {source}: it would replace an input file or "
            "be scored as one next time; write it elsewhere"
        )


def _pending(items: BatchInput, kept: dict[str, int], bar: tqdm) -> Iterator[Item]:
    """The items not yet in the output; kept file names are matched once each."""
    for item in items:
        if kept.get(item.name, 0) > 0:
            kept[item.name] -= 1
            bar.update(1)
            continue
        yield item
