"""MLflow logging of an evaluation: its metrics, figures, tables and report, on one run.

In an Azure ML job the job's own run gets them (Studio shows them); elsewhere a run of the
`deitkit-evaluate` experiment in `MLFLOW_TRACKING_URI`, else in a local store inside the
output folder (`sqlite:///OUT/mlflow.db`, artifacts under `OUT/mlartifacts`), which
`mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db` opens (docs/evaluate.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deitkit.evaluation import ARTIFACTS_DIR, ARTIFACTS_METADATA_FILE, METRICS_FILE, Evaluation
from deitkit.job_run import configured_uri, create_run, job_run_id, log_to_run, tracking_uri

EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "deitkit-evaluate")


@dataclass(frozen=True)
class LoggedRun:
    """Where an evaluation was logged: the tracking URI and the run id."""

    uri: str
    run_id: str
    job_run: bool


def logged_files(evaluation: Evaluation) -> list[Path]:
    """What an evaluation logs as artifacts: metrics, tables, figures and the report."""
    out = evaluation.output
    files = [out / METRICS_FILE, out / ARTIFACTS_METADATA_FILE, out / ARTIFACTS_DIR]
    return files + ([evaluation.report] if evaluation.report else [])


def log_evaluation(evaluation: Evaluation, *, run_name: str | None = None) -> LoggedRun:
    """Log `evaluation` to the job's run, or to a new run (see the module's docstring)."""
    from mlflow.tracking import MlflowClient

    metrics, files = evaluation.metrics, logged_files(evaluation)
    job_run = job_run_id()
    if job_run is not None:
        uri = configured_uri()
        log_to_run(MlflowClient(tracking_uri=uri), job_run, metrics, files)
        return LoggedRun(uri, job_run, True)
    uri = tracking_uri(evaluation.output)
    client = MlflowClient(tracking_uri=uri)
    run_id = create_run(client, EXPERIMENT, evaluation.output, run_name)
    try:
        client.log_param(run_id, "task", evaluation.task.value)
        log_to_run(client, run_id, metrics, files)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return LoggedRun(uri, run_id, False)
