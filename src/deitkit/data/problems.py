"""Problems found while reading or checking a dataset, collected rather than stopping at one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deitkit.errors import DataError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: `what` happened at `path` (and `line`, for text files)."""

    what: str
    severity: Severity = "error"
    path: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """`path:line`, `path`, or an empty string when the problem concerns the whole dataset."""
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what

    def to_dict(self) -> dict:
        return {"severity": self.severity, "where": self.where, "what": self.what}


@dataclass
class ProblemLog:
    """Collects problems in the order found; readers keep going past entry-level errors."""

    problems: list[Problem] = field(default_factory=list)

    def error(self, what: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        self._add(what, "error", path, line)

    def warning(
        self, what: str, *, path: str | Path | None = None, line: int | None = None
    ) -> None:
        self._add(what, "warning", path, line)

    def add_error(self, err: DataError) -> None:
        """Record a DataError raised for one entry (keeps its path and line)."""
        self.problems.append(Problem(err.reason, "error", err.path, err.line))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def raise_if_errors(self) -> None:
        """Raise the first error as a DataError, saying how many more there are."""
        errors = self.errors
        if not errors:
            return
        first = errors[0]
        what = first.what
        if len(errors) > 1:
            what += f" (and {len(errors) - 1} more errors; `deitkit data validate` lists them all)"
        raise DataError(what, path=first.path, line=first.line)

    def _add(self, what: str, severity: Severity, path: str | Path | None, line: int | None):
        self.problems.append(Problem(what, severity, str(path) if path is not None else None, line))
