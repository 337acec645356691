"""MLflow tracking of a fine-tuning run: params, per-epoch metrics, artifacts.

`MLFLOW_TRACKING_URI` is honoured; without it runs go to a local store inside OUT
(`sqlite:///OUT/mlflow.db`, artifacts under `OUT/mlartifacts`), so nothing outside OUT is written.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from deitkit.job_run import (
    create_run,
    job_run_id,
    tracking_uri,
)

log = logging.getLogger(__name__)

EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "deitkit-finetune")


class MlflowTracker(TrainerCallback):
    """Logs the resolved config as params and every logged/evaluated metric by epoch step."""

    def __init__(self, output_dir: Path, params: dict[str, Any], run_name: str | None = None):
        self.output_dir = output_dir
        self.params = params
        self.run_name = run_name
        self.run_id: str | None = None
        self._client = None
        self._owns_run = True

    def _start(self) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(self.output_dir)
        client = MlflowClient(tracking_uri=uri)
        job_run = job_run_id()
        if job_run:
            # Azure ML (and `deitkit azure run-local`) make the job's run and end it; what is
            # logged anywhere else never reaches the job's metrics tab.
            self.run_id, self._client, self._owns_run = job_run, client, False
            client.get_run(job_run)  # fail here, naming the run, if the store lacks it
        else:
            self.run_id = create_run(client, EXPERIMENT, self.output_dir, self.run_name)
            self._client = client
        params = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in self.params.items()]
        client.log_batch(self.run_id, params=params)
        log.info("MLflow run %s in %s", self.run_id, uri)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self._client is None:
            self._start()

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The Trainer's end-of-training summary covers only its own train() call; `train`
        # (training/run.py) logs the whole run's figures through `log_metrics` instead.
        if logs and "train_runtime" not in logs:
            self.log_metrics(logs, step=state.global_step)

    def log_metrics(self, values: Mapping[str, Any], *, step: int) -> None:
        """Log the finite numbers among `values` at `step` (nothing before the run started)."""
        if self._client is None:
            return
        import mlflow

        metrics = [
            mlflow.entities.Metric(key, float(value), 0, step)
            for key, value in values.items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ]
        if metrics:
            self._client.log_batch(self.run_id, metrics=metrics)

    def log_artifacts(self, paths: list[Path]) -> None:
        """Attach files (metrics.json, config, plots) to the run."""
        if self._client is None:
            return
        for path in paths:
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                self._client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED") -> None:
        """End the run this tracker created (a job's run is ended by whoever made it)."""
        if self._client is not None and self._owns_run:
            self._client.set_terminated(self.run_id, status=status)
