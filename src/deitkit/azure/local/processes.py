"""The processes of one job: `bash -c COMMAND`, once, or once per rank as Azure's PyTorch
distribution starts them (no torchrun): `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `NODE_RANK`,
`MASTER_ADDR` and `MASTER_PORT` set per process (how-to-train-distributed-gpu).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MASTER_ADDR = "127.0.0.1"
# Exit code reported for a process stopped at the time limit (as coreutils' timeout does).
TIMEOUT_EXIT = 124
_POLL_S = 0.1
_GRACE_S = 5.0
_TAIL_LINES = 25


@dataclass(frozen=True)
class ProcessResult:
    """How one process ended; `rank` is None outside a distributed job."""

    rank: int | None
    exit_code: int
    log: Path
    timed_out: bool = False

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines of its log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((MASTER_ADDR, 0))
        return sock.getsockname()[1]


def rank_environments(process_count: int, *, distributed: bool) -> list[dict[str, str]]:
    """The variables each process gets: none without a distribution, else one set per rank."""
    if not distributed:
        return [{}]
    shared = {
        "WORLD_SIZE": str(process_count),
        "NODE_RANK": "0",
        "MASTER_ADDR": MASTER_ADDR,
        "MASTER_PORT": str(free_port()),
    }
    return [{**shared, "RANK": str(rank), "LOCAL_RANK": str(rank)} for rank in range(process_count)]


def run_processes(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    ranks: list[dict[str, str]],
    logs: list[Path],
    timeout_s: float | None = None,
) -> list[ProcessResult]:
    """Start one `bash -c command` per entry of `ranks`, each logging to its file; wait.

    When a process fails the others are stopped (a failed process fails the job); after
    `timeout_s` all are. Each runs in its own session, so its children are stopped with it.

    Returns:
        One result per process, in rank order.
    """
    procs = []
    for extra, log in zip(ranks, logs, strict=True):
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    ["bash", "-c", command],
                    cwd=cwd,
                    env={**env, **extra},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    timed_out = False
    try:
        while True:
            codes = [p.poll() for p in procs]  # every process, every time: none is skipped
            if None not in codes or any(code not in (None, 0) for code in codes):
                break
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(_POLL_S)
    finally:
        _stop([p for p in procs if p.poll() is None])
    results = []
    for extra, log, proc in zip(ranks, logs, procs, strict=True):
        rank = int(extra["RANK"]) if "RANK" in extra else None
        code = TIMEOUT_EXIT if timed_out and proc.returncode < 0 else proc.returncode
        results.append(ProcessResult(rank, code, log, timed_out=timed_out))
    return results


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, then SIGKILL what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        end = time.monotonic() + _GRACE_S
        while any(p.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(_POLL_S)
        procs = [p for p in procs if p.poll() is None]
        if not procs:
            return
    for proc in procs:
        proc.wait()
