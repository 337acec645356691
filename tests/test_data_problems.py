"""Tests for deitkit.data.problems: where a problem is, and raising the first error."""

from __future__ import annotations

import pytest

from deitkit.data.problems import Problem, ProblemLog
from deitkit.errors import DataError


def test_where_and_dict():
    assert Problem("bad", path="x.jsonl", line=3).where == "x.jsonl:3"
    assert str(Problem("bad", "warning", "dir")) == "dir: bad"
    assert str(Problem("bad")) == "bad"
    assert Problem("bad", path="a", line=1).to_dict() == {
        "severity": "error",
        "where": "a:1",
        "what": "bad",
    }


def test_log_raises_first_error_with_count():
    log = ProblemLog()
    log.warning("just so", path="w")
    log.raise_if_errors()  # warnings alone do not raise
    log.error("first", path="a.csv", line=2)
    log.add_error(DataError("second", path="b.csv", line=5))
    assert [p.what for p in log.errors] == ["first", "second"]
    with pytest.raises(DataError, match=r"^a\.csv:2: first \(and 1 more errors") as err:
        log.raise_if_errors()
    assert (err.value.path, err.value.line) == ("a.csv", 2)
