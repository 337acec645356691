"""Start-up: a fresh `deitkit serve` of packaged DeiT-base, from launch to its first answer."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from transformers import AutoConfig

from benchmarks.bench_serving import make_checkpoint, make_request_bodies
from benchmarks.machine import classifier_flops, describe, header, write_results
from deitkit.inference import model_files
from deitkit.packaging import package_model
from deitkit.serving.server import LocalServer

STARTS = 3
TARGET_S = 15.0
# What a serving worker does, in a fresh interpreter, timed phase by phase.
PHASES_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from deitkit.inference.packaged import load_packaged
t1 = time.perf_counter()
classifier = load_packaged(sys.argv[1])
t2 = time.perf_counter()
classifier.predict_inputs(json.loads(sys.argv[2])["input_data"]["data"])
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "load_and_choice_s": t2 - t1, "first_answer_s": t3 - t2,
                  "engine": classifier.engine_choice.name,
                  "reason": classifier.engine_choice.reason}))
"""
_SERVING_WITH = re.compile(r"serving with (\S+): (.*)$", re.MULTILINE)


def time_to_first_answer(packaged: Path, body: bytes) -> dict:
    """Seconds from launching `deitkit serve` to a 200 from /score, and the engine it chose.

    `LocalServer` polls `GET /` every 0.2 s, which azmlinfsrv answers once the worker has
    loaded the model (its `init()` runs before the worker accepts), so the figure is at most
    0.2 s late.
    """
    start = time.perf_counter()
    with LocalServer(packaged) as server:
        response = requests.post(
            server.url + "/score",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        seconds = time.perf_counter() - start
        response.raise_for_status()
        found = _SERVING_WITH.findall(server.output())
    engine, reason = found[-1] if found else ("?", "no 'serving with' line in the log")
    return {"seconds": seconds, "engine": engine, "reason": reason.strip()}


def phases(packaged: Path, body: bytes) -> dict:
    """The worker's start-up split: imports, loading with the engine choice, first answer."""
    done = subprocess.run(
        [sys.executable, "-c", PHASES_SCRIPT, str(packaged), body.decode()],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Package random DeiT-base, start it STARTS times, print and write the timings.

    `--model DIR` starts an existing package instead: e.g. one packaged here, started from an
    environment with only the package's requirements (what an endpoint installs).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="a packaged model (default: DeiT-base)")
    args = parser.parse_args(argv)
    machine = describe()
    print(header(machine))
    body = make_request_bodies(1)[0]
    with tempfile.TemporaryDirectory(prefix="deitkit-bench-startup-") as tmp:
        if args.model is None:
            checkpoint = make_checkpoint(Path(tmp) / "checkpoint")
            packaged = package_model(checkpoint, Path(tmp) / "packaged")
        else:
            packaged = args.model
        flops = classifier_flops(AutoConfig.from_pretrained(model_files(packaged).weights))
        starts = [time_to_first_answer(packaged, body) for _ in range(STARTS)]
        split = phases(packaged, body)
    seconds = [s["seconds"] for s in starts]
    results = {
        "model": str(args.model)
        if args.model
        else "random DeiT-base (224 px, patch 16), packaged without a validation set "
        "(candidates: torch-fp32, onnx-fp32)",
        "what": "launch of `python -m deitkit.cli.serve` (azmlinfsrv, 1 worker) to the first "
        "200 from /score (one 320x240 JPEG)",
        "starts": starts,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "phases_in_a_fresh_interpreter": split,
        "target_s": TARGET_S,
        "target_met": statistics.median(seconds) <= TARGET_S,
        "python": sys.executable,
        "torchao_installed": _installed("torchao"),
        "machine": machine,
        "model_flops_per_image": flops,
        "loadavg_1m_after": os.getloadavg()[0],
    }
    for index, start in enumerate(starts, 1):
        print(f"start {index}: {start['seconds']:.1f} s, {start['engine']} ({start['reason']})")
    print(
        f"median {results['median_s']:.1f} s (min {results['min_s']:.1f}, max "
        f"{results['max_s']:.1f}); target <= {TARGET_S:.0f} s: {results['target_met']}"
    )
    print(
        f"phases: imports {split['imports_s']:.1f} s, load and engine choice "
        f"{split['load_and_choice_s']:.1f} s, first answer {split['first_answer_s']:.1f} s"
    )
    write_results("startup", machine, results)
    return results


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


if __name__ == "__main__":
    main()
