"""The report in a real browser: headless Chromium opens it offline, error-free, fully drawn."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from io import BytesIO

import numpy as np
import pytest
import report_samples as samples
from PIL import Image

from deitkit.report import write_report

_INSTALL = (
    "needs a Chromium on PATH: apt-get install chromium (Debian/Ubuntu); the test never "
    "downloads playwright's own browser"
)
_SECTIONS = ["metrics", "confusion", "per-class", "curves", "calibration", "confused-pairs",
             "mistakes"]  # fmt: skip


def _executable() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"playwright missing; {_INSTALL}")
    executable = _executable()
    if executable is None:
        pytest.skip(f"no Chromium found on PATH: {_INSTALL}")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox"], timeout=30_000
            )
        except sync_api.Error as error:
            pytest.skip(f"Chromium at {executable} did not start ({error}); {_INSTALL}")
        yield launched
        launched.close()


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_the_report_loads_offline_without_errors_and_draws_everything(browser, tmp_path, task):
    if task == "multiclass":
        data = samples.multiclass(tmp_path / "images", calibrated=True, with_history=True)
        expected = [*_SECTIONS, "training"]
    else:
        data = samples.multilabel(tmp_path / "images", tuned=True)
        expected = [*_SECTIONS, "thresholds"]
    url = write_report(tmp_path / "report.html", data).resolve().as_uri()

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    # A Content-Security-Policy violation is reported on the console as an error too.
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(url, wait_until="load", timeout=15_000)

        assert errors == []
        assert [r for r in requests if r != url and not r.startswith("data:")] == []
        for section in expected:
            assert page.query_selector(f"section#{section} > h2") is not None, section
        shown = page.evaluate(
            "() => Array.from(document.querySelectorAll('section')).map(s => s.id)"
        )
        assert shown == expected
        drawn = page.evaluate(
            "() => Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
        )
        assert len(drawn) >= 4 and all(drawn), drawn
        # The placeholder-free gallery really shows pictures, not broken-image icons.
        assert page.evaluate("() => document.querySelectorAll('figure.mistake img').length") > 0

        picture = Image.open(BytesIO(page.screenshot(full_page=True))).convert("RGB")
    finally:
        page.close()
    pixels = np.asarray(picture)
    assert picture.height > 900  # a page taller than one screen: every section laid out
    assert pixels.std() > 20
    colours = (pixels.astype(np.uint32) * np.array([1 << 16, 1 << 8, 1], np.uint32)).sum(-1)
    assert len(np.unique(colours)) > 50
