"""The process a local batch job runs: Azure's parallel-run loop over the scoring script.

`python -m deitkit.azure.local.batch_worker JOB.json` imports the deployment's scoring script,
calls `init()` once and `run(mini_batch)` per mini-batch (a list of file paths), and, for
`output_action: append_row`, appends what `run()` returns to the output file as Azure's
runtime does (research-11 section 3): a list (or tuple) gives one `str(element)` line per
element; a DataFrame is written space-separated, without header or index. Each returned
element counts as one input that succeeded. A mini-batch whose `run()` raises, returns
another type or outlives `retry_settings.timeout` is tried `max_retries` more times, then all
its files count as failed. Once the failed files outnumber `error_threshold` (-1: never), the
job stops and fails. `summary.json` says what happened.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("deitkit.azure.local.batch")

EXIT_INIT_FAILED = 3  # as azmlinfsrv exits when init() raises
EXIT_THRESHOLD = 4


class MiniBatchTimeout(Exception):
    """`run()` took longer than `retry_settings.timeout`."""


def load_script(path: Path) -> Any:
    """Import the scoring script from its file, its folder first on sys.path."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def output_lines(result: Any) -> tuple[str, int]:
    """The text `run()`'s result appends to the output file, and how many elements it holds.

    Raises:
        TypeError: the result is neither a list, a tuple nor a pandas DataFrame.
    """
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        text = result.to_csv(header=False, index=False, sep=" ")
        return text, len(result)
    if isinstance(result, list | tuple):
        return "".join(f"{element}\n" for element in result), len(result)
    raise TypeError(f"run() returned {type(result).__name__}; expected a list or a DataFrame")


def _call(run: Any, mini_batch: list[str], timeout_s: float | None) -> Any:
    def expire(signum, frame):
        raise MiniBatchTimeout(f"run() took longer than {timeout_s} s")

    if not timeout_s:
        return run(mini_batch)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return run(mini_batch)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _attempts(
    run: Any, mini_batch: list[str], number: int, attempts: int, timeout_s: float | None
) -> tuple[str, int] | str:
    """What one mini-batch appends and counts, or why its last attempt failed."""
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            return output_lines(_call(run, mini_batch, timeout_s))
        except Exception as err:
            log.warning("mini-batch %d, attempt %d of %d: %r", number, attempt, attempts, err)
            traceback.print_exc()
            error = f"{type(err).__name__}: {err}"
    return error


def work(job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run the loop `job` describes; the exit code and the summary."""
    summary: dict[str, Any] = {"mini_batches": 0, "succeeded": 0, "failed": 0, "errors": []}
    try:
        script = load_script(Path(job["scoring_script"]))
        script.init()
    except Exception:
        summary["errors"].append({"init": traceback.format_exc(limit=5)})
        traceback.print_exc()
        return EXIT_INIT_FAILED, summary
    output = Path(job["output_file"]) if job["output_file"] else None
    attempts = 1 + max(0, int(job["max_retries"]))
    threshold = int(job["error_threshold"])
    for number, mini_batch in enumerate(job["mini_batches"]):
        summary["mini_batches"] += 1
        result = _attempts(script.run, mini_batch, number, attempts, job["timeout_s"])
        if isinstance(result, str):
            summary["failed"] += len(mini_batch)
            summary["errors"].append({"mini_batch": number, "files": mini_batch, "error": result})
        else:
            text, count = result
            if output is not None and text:
                with open(output, "a", encoding="utf-8") as file:
                    file.write(text)
            if count > len(mini_batch):
                log.warning(
                    "mini-batch %d: %d results for %d inputs", number, count, len(mini_batch)
                )
            summary["succeeded"] += min(count, len(mini_batch))
            summary["failed"] += max(0, len(mini_batch) - count)
        if threshold >= 0 and summary["failed"] > threshold:
            summary["errors"].append(
                {"error_threshold": f"{summary['failed']} failed files exceed {threshold}"}
            )
            return EXIT_THRESHOLD, summary
    return 0, summary


def main(argv: list[str] | None = None) -> int:
    path = Path((argv if argv is not None else sys.argv[1:])[0])
    job = json.loads(path.read_text(encoding="utf-8"))
    logging.basicConfig(
        level=getattr(logging, str(job.get("logging_level") or "info").upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code, summary = work(job)
    Path(job["summary_file"]).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
