"""The MLflow run Azure ML creates for each job, in a local store instead of the workspace.

Azure starts a run per job and hands it to the job as `MLFLOW_TRACKING_URI` (an
`azureml://` URI), `MLFLOW_RUN_ID` and `MLFLOW_EXPERIMENT_ID`/`MLFLOW_EXPERIMENT_NAME`; a
pipeline's steps are child runs of the pipeline's run. Here the same variables point at a
local store (SQLite by default), so `mlflow.start_run()` in a job logs into the job's run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXPERIMENT = "deitkit-local"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
_PARENT_TAG = "mlflow.parentRunId"
_SQLITE = "sqlite:///"


def default_tracking_uri(work_dir: Path) -> str:
    """A SQLite store in the work folder, shared by the runs made there."""
    return f"sqlite:///{(work_dir / STORE_FILE).resolve()}"


@dataclass(frozen=True)
class TrackedRun:
    """A run made for a job: the variables the job gets point at it."""

    tracking_uri: str
    experiment_id: str
    experiment_name: str
    run_id: str

    def environment(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_ID": self.experiment_id,
            "MLFLOW_EXPERIMENT_NAME": self.experiment_name,
            "MLFLOW_RUN_ID": self.run_id,
        }


class Tracker:
    """Creates and ends the runs of one local run's jobs in one experiment."""

    def __init__(self, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client = None
        self._experiment_id: str | None = None

    def start(self, name: str, *, parent: TrackedRun | None = None) -> TrackedRun:
        """A new run called `name` (a child of `parent` when given)."""
        client = self._connect()
        tags = {_PARENT_TAG: parent.run_id} if parent else {}
        run = client.create_run(self._experiment_id, run_name=name, tags=tags)
        assert self._experiment_id is not None
        return TrackedRun(self.tracking_uri, self._experiment_id, self.experiment, run.info.run_id)

    def end(self, run: TrackedRun, *, succeeded: bool) -> None:
        """Mark the run FINISHED or FAILED, as Azure does when the job ends."""
        self._connect().set_terminated(run.run_id, status="FINISHED" if succeeded else "FAILED")

    def _connect(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                self._experiment_id = client.create_experiment(
                    self.experiment, artifact_location=_artifact_location(self.tracking_uri)
                )
            else:
                self._experiment_id = found.experiment_id
            self._client = client
        return self._client


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside a SQLite store; MLflow's default would be `./mlruns` in whatever folder is current."""
    if not tracking_uri.startswith(_SQLITE):
        return None
    return (Path(tracking_uri[len(_SQLITE) :]).parent / ARTIFACTS_DIR).resolve().as_uri()
