"""The environment variables of a local job: this machine's, less what Azure's runtime owns,
plus what it sets (run id, MLflow run, datastore stand-in, the job's own variables).

The job runs in the current Python environment instead of the component's image: the folder
of this interpreter goes first on PATH, so `deitkit` and `python` in a command are this
environment's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from deitkit.azure.local.tracking import TrackedRun
from deitkit.data.references import DATASTORE_ROOT_ENV

RUN_ID_ENV = "AZUREML_RUN_ID"
# Set by Azure's runtime (or by torchrun, which Azure does not use); a value inherited from
# the caller's shell would describe some other job.
_OWNED = (
    "AZUREML_",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_",
    "MLFLOW_TRACKING_",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "ROLE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_",
    DATASTORE_ROOT_ENV,
)


def _owned(name: str) -> bool:
    return any(name == o or (o.endswith("_") and name.startswith(o)) for o in _OWNED)


def job_environment(
    *,
    run_id: str,
    tracked: TrackedRun | None,
    datastore: Path | None,
    variables: Mapping[str, str],
    base: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The full environment of a job's processes, and the part the runner set (for the record).

    Args:
        run_id: The job's name (`AZUREML_RUN_ID`).
        tracked: The MLflow run made for the job, if any.
        datastore: The local datastore folder (`$DEITKIT_AZUREML_DATASTORE_ROOT`).
        variables: The job's `environment_variables`.
        base: The environment to start from (default: this process's).
    """
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if not _owned(k)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    shown = {RUN_ID_ENV: run_id}
    if tracked is not None:
        shown.update(tracked.environment())
    if datastore is not None:
        shown[DATASTORE_ROOT_ENV] = str(datastore)
    shown.update({str(k): str(v) for k, v in variables.items()})
    env.update(shown)
    return env, shown
