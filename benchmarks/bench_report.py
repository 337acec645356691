"""The evaluation report in a real browser: file size and Chromium's load time, vs a blank page.

Usage: python -m benchmarks.bench_report [--report PATH] [--loads N]
(default PATH: the quickstart's, quickstart-output/evaluation/report.html).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe, header, write_results

LOADS = 5
TARGET_MB, TARGET_S = 5.0, 2.0  # issue 16: the quickstart's report


def load_seconds(browser, url: str) -> float:
    """Seconds from navigation to the load event (every inline image decoded) in a new page."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        start = time.perf_counter()
        page.goto(url, wait_until="load")
        page.evaluate("Promise.all([...document.images].map(i => i.decode()))")
        return time.perf_counter() - start
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--report", type=Path, default=Path("quickstart-output/evaluation/report.html")
    )
    parser.add_argument("--loads", type=int, default=LOADS)
    args = parser.parse_args()
    if not args.report.is_file():
        print(f"skipped: no report at {args.report} (make quickstart writes one, or pass --report)")
        return
    from playwright.sync_api import sync_playwright

    machine = describe()
    print(header(machine))
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("needs Chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as temp, sync_playwright() as playwright:
        blank = Path(temp) / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body></body></html>")
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        load_seconds(browser, blank.resolve().as_uri())  # the browser's own first-page cost
        report_s = [
            load_seconds(browser, args.report.resolve().as_uri()) for _ in range(args.loads)
        ]
        blank_s = [load_seconds(browser, blank.resolve().as_uri()) for _ in range(args.loads)]
        browser.close()
    size_mb = args.report.stat().st_size / 1e6
    median, baseline = statistics.median(report_s), statistics.median(blank_s)
    print(
        f"report {args.report}: {size_mb:.2f} MB (target < {TARGET_MB:g}); loads in "
        f"{median * 1000:.0f} ms median of {args.loads} ({min(report_s) * 1000:.0f}-"
        f"{max(report_s) * 1000:.0f}; target < {TARGET_S:g} s) = {median / baseline:.1f}x a "
        f"blank page ({baseline * 1000:.0f} ms)"
    )
    write_results(
        "report",
        machine,
        {
            "machine": machine,
            "report": str(args.report),
            "size_mb": size_mb,
            "load_s": report_s,
            "blank_page_s": blank_s,
            "load_vs_blank": median / baseline,
        },
    )


if __name__ == "__main__":
    main()
