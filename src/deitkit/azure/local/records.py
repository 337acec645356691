"""The record a local run leaves beside each job: what ran, with what, and how it ended.

`<job folder>/job.json` holds the rendered command, each input (its value, or the folder
mounted for it), each output folder, the environment variables the runner set, every
process's exit code and log, and the status; `<run folder>/run.json` lists the steps of a
pipeline and its outputs. Both are rewritten as the job goes (status Running, then
Completed or Failed).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOB_RECORD = "job.json"
RUN_RECORD = "run.json"
RUNNING, COMPLETED, FAILED = "Running", "Completed", "Failed"


def now() -> str:
    """The current time as ISO 8601 in UTC, as records state times."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write `record` as JSON, replacing the file in one step (a reader never sees half)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_record(path: Path) -> dict[str, Any]:
    """A record written by `write_record`."""
    return json.loads(path.read_text(encoding="utf-8"))
