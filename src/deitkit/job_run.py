"""The MLflow store and run an Azure ML job logs into (`MLFLOW_TRACKING_URI`, `MLFLOW_RUN_ID`).

Azure ML sets both in every job (so does `deitkit azure run-local`); what is logged anywhere
else never reaches the job's metrics tab in Studio.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# The local store a command keeps inside its output folder when no tracking URI is set:
# a SQLite file (with its journal files) and the artifact folder beside it.
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
JOB_RUN_ENV = "MLFLOW_RUN_ID"


def configured_uri() -> str | None:
    """MLFLOW_TRACKING_URI when MLflow can use it here.

    Azure ML jobs set an `azureml://` URI, which only the azureml-mlflow plugin opens. The
    training extra and the training environment install it; an environment without it (e.g.
    deitkit installed without the training extra) logs locally instead of failing the job.
    """
    uri = os.environ.get(TRACKING_URI_ENV)
    if uri and uri.startswith("azureml:") and find_spec("azureml.mlflow") is None:
        log.warning("%s %s needs azureml-mlflow; logging locally instead", TRACKING_URI_ENV, uri)
        return None
    return uri or None


def job_run_id() -> str | None:
    """The job's run (`MLFLOW_RUN_ID`) when its tracking URI is usable here, else None."""
    if configured_uri() is None:
        return None
    return os.environ.get(JOB_RUN_ENV, "").strip() or None


def log_to_job_run(metrics: Mapping[str, object], artifacts: list[Path]) -> bool:
    """Log the finite numeric `metrics` and the `artifacts` (files or folders) to the job's run.

    Returns:
        False (and logs nothing) outside a job.
    """
    run_id = job_run_id()
    if run_id is None:
        return False
    from mlflow.tracking import MlflowClient

    log_to_run(MlflowClient(tracking_uri=configured_uri()), run_id, metrics, artifacts)
    return True


def log_to_run(client, run_id: str, metrics: Mapping[str, object], artifacts: list[Path]) -> None:
    """Log the finite numeric `metrics` and the `artifacts` (files, or folders by their name)
    to `run_id` through an `MlflowClient`."""
    import mlflow

    values = [
        mlflow.entities.Metric(key, float(value), 0, 0)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ]
    if values:
        client.log_batch(run_id, metrics=values)
    for path in artifacts:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=path.name)
        elif path.is_file():
            client.log_artifact(run_id, str(path))
    log.info("logged %d metrics and %d artifacts to run %s", len(values), len(artifacts), run_id)


def tracking_uri(output_dir: Path) -> str:
    """The store runs are logged to: the environment's, else a SQLite file inside the output."""
    return configured_uri() or f"sqlite:///{output_dir.resolve()}/{STORE_FILE}"


def create_run(client, experiment: str, output_dir: Path, run_name: str | None = None) -> str:
    """A new run of `experiment` (created when missing; in a local store its artifacts go to
    `output_dir/mlartifacts`); its id."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if configured_uri() is None:
            location = (output_dir / ARTIFACTS_DIR).resolve().as_uri()
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    return client.create_run(experiment_id, run_name=run_name).info.run_id
