"""CPU threads for inference: one per physical core this process may use, set once."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_configured = False


def inference_threads() -> int:
    """How many intra-op threads suit this machine.

    Physical cores (hyper-threads share one core's matrix units, so they add contention, not
    speed), capped by the CPUs this process may run on (taskset, Kubernetes cpusets) and by a
    cgroup CPU quota (Docker `--cpus`, Azure container limits).
    """
    try:
        import psutil  # an MLflow dependency, so present wherever deitkit is

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    candidates = [n for n in (physical, allowed, _cgroup_quota()) if n]
    return max(1, min(candidates)) if candidates else max(1, os.cpu_count() or 1)


def configure_threads() -> int:
    """Set torch's intra-op threads once per process and return the count in use.

    An explicit `OMP_NUM_THREADS` wins: torch already read it at start-up, and it is left alone.
    """
    global _configured
    if not _configured:
        _configured = True
        if not os.environ.get("OMP_NUM_THREADS", "").strip():
            threads = inference_threads()
            torch.set_num_threads(threads)
            log.info("inference uses %d CPU threads", threads)
    return torch.get_num_threads()


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs granted by a cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`) quota, rounded up."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        if quota == "max" or int(quota) <= 0:
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except ValueError:
        return None
