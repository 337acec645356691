"""Sections of a written report, cut out for a notebook to show inline."""

from __future__ import annotations

import re

import pytest
import report_samples as samples

from deitkit.errors import ConfigError
from deitkit.report import write_report
from deitkit.report.excerpt import KEY_SECTIONS, report_excerpt


def test_the_key_sections_come_with_the_page_style_in_the_order_asked(tmp_path):
    path = write_report(tmp_path / "report.html", samples.multiclass(tmp_path))

    excerpt = report_excerpt(path, ["mistakes", "metrics", "thresholds"])

    assert excerpt.startswith("<style>")
    # thresholds is multilabel only: left out, not an error
    assert re.findall(r'<section id="([^"]+)">', excerpt) == ["mistakes", "metrics"]
    page = path.read_text(encoding="utf-8")
    mistakes = re.search(r'<section id="mistakes">.*?</section>', page, re.DOTALL).group(0)
    assert mistakes in excerpt  # cut whole, thumbnails included
    assert re.findall(r'<section id="([^"]+)">', report_excerpt(path)) == list(KEY_SECTIONS)


def test_a_file_that_is_not_a_report_is_a_one_line_error(tmp_path):
    other = tmp_path / "notes.html"
    other.write_text("<html><body>hello</body></html>")
    with pytest.raises(ConfigError, match="not an evaluation report"):
        report_excerpt(other)
    with pytest.raises(ConfigError, match="cannot be read"):
        report_excerpt(tmp_path / "missing.html")
