"""Azure ML jobs run on this machine as Azure runs them: components, pipelines, batch scoring."""

from deitkit.azure.local.batch import BatchRun, run_local_batch
from deitkit.azure.local.job import JobResult, LocalJobError
from deitkit.azure.local.runner import DEFAULT_WORK_DIR, LocalRun, run_local

__all__ = [
    "DEFAULT_WORK_DIR",
    "BatchRun",
    "JobResult",
    "LocalJobError",
    "LocalRun",
    "run_local",
    "run_local_batch",
]
