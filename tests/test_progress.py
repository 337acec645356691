"""Progress outside a terminal (deitkit/progress.py): plain lines, never a carriage return."""

from __future__ import annotations

import io
import sys

import pytest
from tqdm import tqdm

from deitkit import progress
from deitkit.progress import LineProgress, plain_logs, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_known_total_logs_a_line_per_tenth_and_none_more():
    out = io.StringIO()
    with progress_bar(total=95, desc="scoring", unit="img", file=out) as bar:
        for _ in range(95):
            bar.update(1)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10
    assert lines[0].startswith("scoring:  11% 10/95") and lines[-1].startswith(
        "scoring: 100% 95/95"
    )


def test_an_iterable_gets_lines_and_the_last_line_ends_the_log():
    out = io.StringIO()
    assert list(progress_bar(range(30), file=out)) == list(range(30))
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("100% 30/30")
    assert out.getvalue().endswith("\n") and "\n\n" not in out.getvalue()


def test_tqdm_write_beside_a_line_bar_clears_nothing():
    out = io.StringIO()
    with progress_bar(total=4, file=out) as bar:
        bar.update(2)
        tqdm.write("epoch 1", file=out)
        bar.update(2)
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines()[1] == "epoch 1"


def test_a_bar_stopped_early_or_without_a_total_still_says_where_it_stopped():
    out = io.StringIO()
    bar = progress_bar(total=10, file=out)
    bar.update(3)
    bar.close()
    unknown = progress_bar(total=None, desc="scoring", unit="img", file=out)
    unknown.update(7)
    unknown.close()
    first, second = out.getvalue().splitlines()
    assert first.startswith(" 30% 3/10") and second.startswith("scoring: 7img [")


def test_a_terminal_gets_tqdm_and_disable_stays_silent():
    terminal = _Terminal()
    bar = progress_bar(total=3, file=terminal)
    assert not isinstance(bar, LineProgress)
    bar.close()
    quiet = io.StringIO()
    progress_bar(range(3), disable=True, file=quiet).close()
    assert quiet.getvalue() == ""


def test_outside_a_terminal_the_library_bars_are_turned_off(monkeypatch):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv(progress.HUB_BARS_VARIABLE, raising=False)
    monkeypatch.delenv(progress.MLFLOW_BARS_VARIABLE, raising=False)
    try:
        plain_logs()
        assert not transformers_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled()
        assert progress.os.environ[progress.MLFLOW_BARS_VARIABLE] == "false"
    finally:
        transformers_logging.enable_progress_bar()
        enable_progress_bars()


@pytest.mark.parametrize("stderr", [_Terminal(), io.StringIO()])
def test_a_users_own_setting_of_the_hub_variable_is_left_alone(stderr, monkeypatch):
    from transformers.utils import logging as transformers_logging

    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv(progress.HUB_BARS_VARIABLE, "0")
    plain_logs()
    assert transformers_logging.is_progress_bar_enabled()
    assert progress.os.environ[progress.HUB_BARS_VARIABLE] == "0"
