"""The predictions CSV: its rows, and a writer that replaces the output atomically and resumes."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from deitkit.data.files import not_a_file
from deitkit.errors import ConfigError, DataError
from deitkit.inference import Classifier
from deitkit.inference.scoring import Scored

HEADER = ("file_name", "predicted", "probs", "labels", "error")


@dataclass(frozen=True)
class Row:
    """One output row; a skipped item has `error` set and no predicted, probs or labels."""

    file_name: str
    predicted: list[str] | None = None
    probs: list[float] | None = None
    labels: list[str] | None = None
    error: str = ""

    def fields(self) -> list[str]:
        """The CSV fields: lists as JSON, absent values as empty strings."""
        lists = (self.predicted, self.probs, self.labels)
        return [self.file_name, *("" if v is None else json.dumps(v) for v in lists), self.error]


def to_rows(
    classifier: Classifier,
    scored: Sequence[Scored],
    *,
    threshold: float | None = None,
    top_k: int | None = None,
) -> list[Row]:
    """Rows for scored items; `predicted` follows `Prediction.predicted(threshold, top_k)`."""
    good = [s for s in scored if s.probs is not None]
    predictions = iter(classifier.predictions([s.probs for s in good]) if good else [])
    rows = []
    for s in scored:
        if s.probs is None:
            rows.append(Row(s.item.name, error=s.error))
            continue
        prediction = next(predictions)
        rows.append(
            Row(
                s.item.name,
                predicted=prediction.predicted(threshold=threshold, top_k=top_k),
                # str() of a float32 is its shortest round-trip form: 0.25, not 0.25000000372529.
                probs=[float(str(p)) for p in s.probs],
                labels=list(classifier.labels),
            )
        )
    return rows


def format_line(row: Row) -> str:
    """One CSV record (quoted as needed), without a line terminator."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row.fields())
    return buffer.getvalue()


def read_rows(path: Path) -> list[list[str]]:
    """The records of a predictions CSV written by `PredictionsWriter`, header checked.

    Raises:
        DataError: the file is not such a CSV, naming the file and line.
    """
    records, torn = _read_records(path)
    if torn is not None:
        _check_fields(records[-1], path, torn)
    return records


def read_resumable(path: Path) -> tuple[list[list[str]], int | None]:
    """The complete records of a predictions CSV, and the line of a torn last row dropped.

    A run killed while writing leaves its last row cut short: no line end after it, or fewer
    fields than the header. That row is dropped (its item is scored again); anything else
    malformed is an error.

    Raises:
        DataError: the file is not a predictions CSV, naming the file and line.
    """
    records, torn = _read_records(path)
    if torn is not None:
        records.pop()
    return records, torn


def _read_records(path: Path) -> tuple[list[list[str]], int | None]:
    """Every record after the header, and the first line of the last one if it is torn."""
    with open(path, newline="", encoding="utf-8") as file:
        text = file.read()
    reader = csv.reader(io.StringIO(text, newline=""))
    records, starts = [], []
    line = 1
    for record in reader:
        records.append(record)
        starts.append(line)
        line = reader.line_num + 1
    if not records or tuple(records[0]) != HEADER:
        found = ",".join(records[0]) if records else "an empty file"
        raise DataError(
            f"not a batch-score predictions file: expected the header {','.join(HEADER)}, "
            f"found {found}",
            path=path,
            line=1,
        )
    records, starts = records[1:], starts[1:]
    torn = None
    if records and (not text.endswith("\n") or len(records[-1]) < len(HEADER)):
        torn = starts[-1]
    whole = len(records) - (torn is not None)
    for record, start in zip(records[:whole], starts[:whole], strict=True):
        _check_fields(record, path, start)
    return records, torn


def _check_fields(record: list[str], path: Path, line: int) -> None:
    if len(record) != len(HEADER):
        raise DataError(f"expected {len(HEADER)} fields, found {len(record)}", path=path, line=line)


def partial_path(output: Path) -> Path:
    """Where rows go while a run is under way: a hidden file beside `output`."""
    return output.with_name(f".{output.name}.partial")


class PredictionsWriter:
    """Writes the predictions CSV so that `output` only ever holds a complete file.

    Rows are appended to `partial_path(output)` and flushed after every batch; leaving the
    `with` block without an exception renames it over `output` (atomic on one file system).
    After a failure the partial file stays, and a run with `resume` continues from it.

    With `resume`, the rows scored without error by the previous run are kept: from the partial
    file when there is one (the latest run's progress), else from `output`. `kept` counts them
    by file name; rows with an error are dropped so that their items are tried again, and so
    is a torn last row (see `read_resumable`), which `notices` then reports.

    Raises:
        ConfigError: `output` is a folder or another file that is not a regular one (a FIFO,
            a device): the finished file would replace it.
        DataError: the file resumed from is not a predictions CSV.
    """

    def __init__(self, output: str | Path, *, resume: bool = False):
        self.output = Path(output)
        if self.output.is_dir():
            raise ConfigError(f"{self.output}: is a folder; --output takes a .csv file path")
        why = not_a_file(self.output) if os.path.lexists(self.output) else None
        if why is not None:
            raise ConfigError(f"{self.output}: {why}; --output takes a .csv file path")
        self.partial = partial_path(self.output)
        self.resume = resume
        self.kept: Counter[str] = Counter()
        self.notices: list[str] = []
        self.written = 0
        self._file: io.TextIOWrapper | None = None

    def __enter__(self) -> PredictionsWriter:
        previous: list[list[str]] = []
        if self.resume:
            source = self.partial if self.partial.is_file() else self.output
            if source.is_file():
                records, torn = read_resumable(source)
                previous = [r for r in records if not r[-1]]
                if torn is not None:
                    self.notices.append(
                        f"{source}:{torn}: dropped the last row, cut short when the previous run "
                        "stopped while writing it; its item is scored again"
                    )
        self.kept = Counter(record[0] for record in previous)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # The kept rows go to a fresh file renamed into place: the partial being resumed from
        # stays intact until its replacement is complete.
        staging = self.output.with_name(f".{self.output.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(staging, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(HEADER)
            writer.writerows(previous)
        os.replace(staging, self.partial)
        self._file = open(self.partial, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        return self

    def write(self, rows: Iterable[Row]) -> None:
        """Append rows and flush them, so a crash loses at most the batch being scored."""
        assert self._file is not None, "PredictionsWriter is used outside its `with` block"
        records = [row.fields() for row in rows]
        self._writer.writerows(records)
        self._file.flush()
        self.written += len(records)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._file is not None
        try:
            if exc_type is None:
                self._file.flush()
                os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self._file = None
        if exc_type is None:
            os.replace(self.partial, self.output)
