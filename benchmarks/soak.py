"""Soak: 16 clients for 10 minutes of valid and malformed requests and a few stuck connections.

Against `deitkit serve` on loopback (one worker, the shipped gunicorn settings), it checks what
a long run must keep: no 5xx, no worker restart (the worker PIDs before and after), worker RSS
growth under 5 % from the end of the warm-up to the end, and it reports p50/p99 latency.
`python -m benchmarks.soak [--minutes N] [--model PATH]`; not part of `make bench` (it runs
for minutes). The run is bounded: every request and every stuck connection has a timeout,
and no client starts a request after the deadline.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests
import torch
from transformers import AutoConfig

from benchmarks.bench_serving import make_checkpoint, make_request_bodies
from benchmarks.machine import (
    classifier_flops,
    describe,
    fraction_of_ceiling,
    gemm_ceiling,
    header,
    results_path,
)
from deitkit.inference import model_files
from deitkit.packaging import package_model
from deitkit.serving.gunicorn_conf import server_settings_from_env
from deitkit.serving.server import LocalServer

CLIENTS = 16
MINUTES = 10.0
STUCK = 2  # connections kept stuck at any time: idle, then partial headers, then short body
WARMUP_S = 60.0  # RSS is compared from here (or a tenth of a shorter run) to the end
SAMPLE_S = 5.0
REQUEST_TIMEOUT_S = 60.0
# A small body cap keeps the 413 case cheap on loopback (1.5 MiB sent, refused unread).
MAX_BODY_BYTES = 1024 * 1024
RSS_GROWTH_LIMIT = 0.05
JSON = {"Content-Type": "application/json"}

# kind → (share of requests, expected status)
MIX = {
    "valid": (60, 200),
    "bad json": (8, 400),
    "wrong type": (8, 400),
    "bad base64": (8, 400),
    "not an image": (8, 400),
    "private url": (4, 400),
    "huge body": (4, 413),
}


def malformed_bodies() -> dict[str, bytes]:
    """One body per malformed kind of MIX."""
    text = base64.b64encode(b"plain text, not an image " * 8).decode()

    def form(value: object) -> bytes:
        return json.dumps({"input_data": [value]}).encode()

    return {
        "bad json": b'{"input_data": ["',
        "wrong type": form(42),
        "bad base64": form("%%% not base64 %%%"),
        "not an image": form(text),
        "private url": form("http://10.0.0.1/cat.png"),  # refused before any connection
        "huge body": form("A" * (MAX_BODY_BYTES + MAX_BODY_BYTES // 2)),
    }


def worker_rss(server: LocalServer) -> dict[int, int]:
    """RSS in bytes of each gunicorn worker (the children of the server process)."""
    rss = {}
    for child in psutil.Process(server.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            rss[child.pid] = child.memory_info().rss
    return rss


class Soak:
    """The clients, the stuck connections and the RSS sampler of one run."""

    def __init__(self, server: LocalServer, valid: list[bytes], seconds: float, seed: int = 0):
        self.server = server
        self.valid = valid
        self.malformed = malformed_bodies()
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.seed = seed
        self.lock = threading.Lock()
        self.requests: list[tuple[str, int | str, float]] = []  # kind, status or error, s
        self.stuck: list[tuple[str, float | None, bytes]] = []  # kind, closed after s, answer
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.errors: list[str] = []  # the client errors' messages

    def client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        kinds = list(MIX)
        weights = [share for share, _ in MIX.values()]
        url = self.server.url + "/score"
        with requests.Session() as session:
            while time.monotonic() < self.deadline:
                kind = rng.choices(kinds, weights)[0]
                body = rng.choice(self.valid) if kind == "valid" else self.malformed[kind]
                began = time.perf_counter()
                try:
                    response = session.post(url, data=body, headers=JSON, timeout=REQUEST_TIMEOUT_S)
                    outcome: int | str = response.status_code
                except requests.RequestException as err:
                    outcome = type(err).__name__
                    with self.lock:
                        self.errors.append(f"{kind}: {err}"[:300])
                    session.close()  # a fresh connection for the next request
                with self.lock:
                    self.requests.append((kind, outcome, time.perf_counter() - began))

    def stuck_connections(self, index: int) -> None:
        """Open stuck connections one after another until the deadline; note when each closes."""
        kinds = ("idle", "partial headers", "short body")
        turn = index
        while time.monotonic() < self.deadline:
            kind = kinds[turn % len(kinds)]
            turn += 1
            sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
            head = f"POST /score HTTP/1.1\r\nHost: 127.0.0.1:{self.server.port}\r\n"
            if kind == "partial headers":
                sock.sendall(head.encode() + b"Content-Type: appl")
            elif kind == "short body":
                body = self.valid[0]
                sock.sendall(
                    f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    .encode() + body[:100]
                )  # fmt: skip
            opened, received, closed = time.monotonic(), b"", None
            sock.settimeout(1.0)
            with sock:
                while time.monotonic() < self.deadline + 120:  # bounded even if never closed
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        closed = time.monotonic() - opened
                        break
                    received += chunk
            with self.lock:
                self.stuck.append((kind, closed, received[:12]))

    def sampler(self) -> None:
        while time.monotonic() < self.deadline:
            self.samples.append((time.monotonic() - self.start, worker_rss(self.server)))
            time.sleep(SAMPLE_S)
        self.samples.append((time.monotonic() - self.start, worker_rss(self.server)))

    def run(self, clients: int, stuck: int) -> None:
        threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]
        threads += [
            threading.Thread(target=self.stuck_connections, args=(i,)) for i in range(stuck)
        ]
        threads.append(threading.Thread(target=self.sampler))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def summarise(soak: Soak, warmup_s: float) -> dict:
    """Counts, latencies, restarts and RSS growth of a finished run."""
    by_kind: dict[str, dict[str, int]] = {}
    for kind, outcome, _ in soak.requests:
        counts = by_kind.setdefault(kind, {})
        counts[str(outcome)] = counts.get(str(outcome), 0) + 1
    five_xx = sum(1 for _, o, _ in soak.requests if isinstance(o, int) and o >= 500)
    unexpected = sum(1 for kind, o, _ in soak.requests if isinstance(o, int) and o != MIX[kind][1])
    errors = sum(1 for _, o, _ in soak.requests if isinstance(o, str))

    def percentiles(latencies: list[float]) -> dict[str, float]:
        ms = np.asarray(latencies) * 1000
        if not len(ms):
            return {}
        return {
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
        }

    valid = [s for kind, o, s in soak.requests if kind == "valid" and o == 200]
    every = [s for _, o, s in soak.requests if isinstance(o, int)]
    first = soak.samples[0][1]
    last = soak.samples[-1][1]
    warm = [sum(rss.values()) for t, rss in soak.samples if t >= warmup_s][:3]
    end = [sum(rss.values()) for _, rss in soak.samples[-3:]]
    rss_warm, rss_end = statistics.median(warm), statistics.median(end)
    stuck: dict[str, dict] = {}
    for kind, closed, answer in soak.stuck:
        entry = stuck.setdefault(kind, {"opened": 0, "closed_by_server": 0, "closed_after_s": []})
        entry["opened"] += 1
        if closed is not None:
            entry["closed_by_server"] += 1
            entry["closed_after_s"].append(round(closed, 1))
        if answer:
            entry.setdefault("answers", set()).add(answer.decode("latin-1"))
    for entry in stuck.values():
        times = entry.pop("closed_after_s")
        entry["median_closed_after_s"] = statistics.median(times) if times else None
        if "answers" in entry:
            entry["answers"] = sorted(entry["answers"])
    return {
        "requests": len(soak.requests),
        "requests_per_s": len(soak.requests) / (soak.deadline - soak.start),
        "by_kind": by_kind,
        "five_xx": five_xx,
        "unexpected_status": unexpected,
        "client_errors": errors,
        "client_error_messages": sorted(set(soak.errors))[:10],
        "latency_valid": percentiles(valid),
        "latency_all": percentiles(every),
        "workers_before": sorted(first),
        "workers_after": sorted(last),
        "worker_restarts": len(set(first) ^ set(last)),
        "rss_after_warmup_mb": rss_warm / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "rss_max_mb": max(sum(rss.values()) for _, rss in soak.samples) / 2**20,
        "rss_growth": rss_end / rss_warm - 1,
        "stuck_connections": stuck,
    }


def machine() -> dict:
    """What the figures depend on: the machine (benchmarks.machine), and the fp32 GEMM ceiling
    on one thread too (beside the all-threads one, it shows whether the other cores were
    free), the versions."""
    return {
        **describe(),
        "gemm_fp32_1_thread": gemm_ceiling(threads=1),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def ceilings() -> dict:
    """The fp32 GEMM ceiling on torch's threads and on one, and the load, now."""
    return {
        "loadavg_1m": os.getloadavg()[0],
        "gemm_fp32": gemm_ceiling(),
        "gemm_fp32_1_thread": gemm_ceiling(threads=1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--stuck", type=int, default=STUCK)
    parser.add_argument(
        "--model", type=Path, help="model to serve (default: a random DeiT-base, packaged)"
    )
    parser.add_argument(
        "--output", type=Path, help="results file (default: benchmarks/results/KIND/soak.json)"
    )
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    warmup_s = min(WARMUP_S, seconds / 10)
    before = machine()
    print(header(before))
    settings = server_settings_from_env()
    bodies = make_request_bodies()
    with tempfile.TemporaryDirectory(prefix="deitkit-soak-") as tmp:
        model = args.model
        if model is None:
            model = package_model(make_checkpoint(Path(tmp) / "checkpoint"), Path(tmp) / "pkg")
        model_flops = classifier_flops(AutoConfig.from_pretrained(model_files(model).weights))
        env = {"DEITKIT_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
        with LocalServer(model, env=env, log_file=Path(tmp) / "server.log") as server:
            for body in bodies[:3]:  # the first requests load lazily-built kernels
                requests.post(server.url + "/score", data=body, headers=JSON, timeout=300)
            soak = Soak(server, bodies, seconds)
            soak.run(args.clients, args.stuck)
            alive = server.process.poll() is None and server.healthy()
    results = {
        "model": str(args.model) if args.model else "random DeiT-base, packaged",
        "clients": args.clients,
        "stuck_at_a_time": args.stuck,
        "minutes": args.minutes,
        "warmup_s": warmup_s,
        "server": {
            "workers": 1,
            "threads": settings.threads,
            "read_timeout_s": settings.read_timeout,
            "max_body_bytes": MAX_BODY_BYTES,
        },
        "mix": {kind: share for kind, (share, _) in MIX.items()},
        **summarise(soak, warmup_s),
        "server_alive_after": alive,
        "machine_before": before,
        "machine_after": ceilings(),
        "model_flops_per_image": model_flops,
    }
    # Valid images answered per second under the mix: the serving's share of the machine.
    valid_per_s = results["by_kind"].get("valid", {}).get("200", 0) / seconds
    results["valid_images_per_s"] = valid_per_s
    results["valid_of_ceiling"] = fraction_of_ceiling(valid_per_s, model_flops, before)
    results["targets_met"] = {
        "no_5xx": results["five_xx"] == 0,
        "no_worker_restart": results["worker_restarts"] == 0 and alive,
        "rss_growth_under_5pct": results["rss_growth"] < RSS_GROWTH_LIMIT,
    }
    print_results(results)
    output = args.output or results_path("soak", before)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {output}")
    return results


def print_results(r: dict) -> None:
    m, after = r["machine_before"], r["machine_after"]
    print(header(m))
    print(
        f"GEMM fp32 GFLOP/s before/after: {m['torch_threads']} threads "
        f"{m['gemm_fp32']['gflops']:.0f}/{after['gemm_fp32']['gflops']:.0f}, 1 thread "
        f"{m['gemm_fp32_1_thread']['gflops']:.0f}/{after['gemm_fp32_1_thread']['gflops']:.0f}; "
        f"load {m['loadavg_1m']:.1f} -> {after['loadavg_1m']:.1f}"
    )
    print(
        f"{r['model']}; {r['clients']} clients, {r['stuck_at_a_time']} stuck connections, "
        f"{r['minutes']:g} min; {r['server']}"
    )
    print(
        f"{r['requests']} requests ({r['requests_per_s']:.1f}/s); valid images "
        f"{r['valid_images_per_s']:.2f}/s, {r['valid_of_ceiling']:.0%} of the ceiling"
    )
    for kind, counts in r["by_kind"].items():
        print(f"  {kind:<13} {counts}")
    lv, la = r["latency_valid"], r["latency_all"]
    print(
        f"valid requests p50 {lv['p50_ms']:.0f} ms, p99 {lv['p99_ms']:.0f} ms (max "
        f"{lv['max_ms']:.0f}); all p50 {la['p50_ms']:.0f} ms, p99 {la['p99_ms']:.0f} ms"
    )
    print(
        f"5xx {r['five_xx']}, other unexpected status {r['unexpected_status']}, client errors "
        f"{r['client_errors']}, worker restarts {r['worker_restarts']}"
    )
    print(
        f"worker RSS {r['rss_after_warmup_mb']:.0f} MB after warm-up -> {r['rss_end_mb']:.0f} MB "
        f"at the end ({100 * r['rss_growth']:+.1f} %), max {r['rss_max_mb']:.0f} MB"
    )
    for kind, entry in r["stuck_connections"].items():
        print(f"  stuck {kind:<15} {entry}")
    print(f"targets: {r['targets_met']}")


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if all(outcome["targets_met"].values()) else 1)
