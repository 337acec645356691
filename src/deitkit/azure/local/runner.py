"""`run_local`: a command or pipeline component run on this machine as Azure ML runs it.

Everything is checked first (input names, types, required inputs, data paths, bindings,
commands), so a bad input stops the run before any job starts. Then each step runs in its
own job folder (`job`), in dependency order, and the run's outputs are its steps' output
folders. What is emulated and what is not: docs/azure.md, "Running Azure ML jobs locally".
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.assets.manifest import Manifest
from deitkit.azure.local import records
from deitkit.azure.local.components import load_spec
from deitkit.azure.local.inputs import Binder, check_inputs
from deitkit.azure.local.job import Context, JobResult, LocalJobError, OutputRef, Step, run_step
from deitkit.azure.local.pipeline import plan
from deitkit.azure.local.tracking import DEFAULT_EXPERIMENT, Tracker, default_tracking_uri
from deitkit.errors import ConfigError

DEFAULT_WORK_DIR = Path("azureml-local-runs")
# Commands get paths unquoted, as on Azure, whose mount paths never need quoting.
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_./@+:=,-]+$")


@dataclass(frozen=True)
class LocalRun:
    """A finished local run: its folder, each step's job and the component's output folders."""

    run_id: str
    folder: Path
    jobs: dict[str, JobResult]
    outputs: dict[str, Path]


def run_local(
    spec: str | Path,
    inputs: Mapping[str, Any] | None = None,
    *,
    datastore: str | Path | None = None,
    work_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    environment_variables: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    manifest: Manifest | None = None,
    echo: Callable[[str], None] | None = None,
) -> LocalRun:
    """Run the command or pipeline component at `spec` locally.

    Args:
        spec: The component's YAML.
        inputs: Values of its inputs, as `--set name=value` gives them (strings are parsed
            by the input's type) or as Python values; data inputs take a local path or an
            `azureml://datastores/<ds>/paths/<p>` URL.
        datastore: The local folder standing in for the workspace's datastores.
        work_dir: Where the run's folder is made (default `./azureml-local-runs`).
        tracking_uri: The MLflow store of the jobs' runs (default: SQLite in `work_dir`).
        experiment: The MLflow experiment of those runs.
        environment_variables: Set in every job, as a job's `environment_variables` are.
        timeout_s: Stop a job that runs longer (its processes are killed; the job fails).
        manifest: The asset manifest `azureml:` component references resolve through.
        echo: Called with a line as each step starts and ends.

    Returns:
        The run, once every step has completed.

    Raises:
        ConfigError: a bad input or spec; nothing ran.
        LocalJobError: a step failed; later steps did not run.
    """
    component = load_spec(spec)
    store = None
    if datastore is not None:
        store = Path(datastore).absolute()
        if not store.is_dir():
            raise ConfigError(f"--datastore {datastore}: no such folder")
    binder = Binder(datastore=store, manifest=manifest)
    values = check_inputs(
        component,
        dict(inputs or {}),
        binder,
        origin="--set",
        base=Path.cwd(),
        hint="give it with --set {name}=VALUE",
    )
    planned = plan(component, values, binder)
    work = Path(work_dir if work_dir is not None else DEFAULT_WORK_DIR).absolute()
    folder = new_run_folder(work, component.entity.name)
    run_id = folder.name
    tracker = Tracker(tracking_uri or default_tracking_uri(work), experiment)
    parent = tracker.start(run_id) if component.type == "pipeline" else None
    ctx = Context(
        datastore=store,
        tracker=tracker,
        parent_run=parent,
        environment_variables=dict(environment_variables or {}),
        timeout_s=timeout_s,
        echo=echo or (lambda line: None),
    )
    # A lone command job is the run; a pipeline's steps get a folder each.
    lone = component.type == "command"

    def job_folder(step: Step) -> Path:
        return folder if lone else folder / step.name

    record: dict[str, Any] = {
        "run_id": run_id,
        "spec": str(Path(spec).absolute()),
        "type": component.type,
        "status": records.RUNNING,
        "started": records.now(),
        "inputs": {k: None if v is None else str(v) for k, v in values.items()},
        "steps": {step.name: str(job_folder(step)) for step in planned.steps},
        "mlflow_run_id": parent.run_id if parent else None,
    }
    records.write_record(folder / records.RUN_RECORD, record)
    start = time.monotonic()
    jobs: dict[str, JobResult] = {}
    produced: dict[OutputRef, Path] = {}
    try:
        for step in planned.steps:
            job_id = run_id if lone else f"{run_id}_{step.name.replace('/', '_')}"
            result = run_step(step, job_folder(step), job_id, ctx, produced)
            jobs[step.name] = result
            produced.update({OutputRef(step.name, k): v for k, v in result.outputs.items()})
    except (LocalJobError, ConfigError):
        record.update(status=records.FAILED, duration_s=round(time.monotonic() - start, 2))
        records.write_record(folder / records.RUN_RECORD, record)
        if parent is not None:
            tracker.end(parent, succeeded=False)
        raise
    outputs = {name: produced[ref] for name, ref in planned.outputs.items()}
    record.update(
        status=records.COMPLETED,
        duration_s=round(time.monotonic() - start, 2),
        outputs={k: str(v) for k, v in outputs.items()},
    )
    records.write_record(folder / records.RUN_RECORD, record)
    if parent is not None:
        tracker.end(parent, succeeded=True)
    return LocalRun(run_id, folder, jobs, outputs)


def new_run_folder(work_dir: str | Path, name: str | None) -> Path:
    """A new folder `<work_dir>/<name>_<UTC time>_<random>`; its name is the run id.

    Raises:
        ConfigError: the path would need quoting in a shell command.
    """
    work = Path(work_dir).absolute()
    if not _SHELL_SAFE.match(str(work)):
        raise ConfigError(
            f"--work-dir {work}: commands get paths unquoted (as on Azure, whose mount paths "
            "hold no spaces or shell characters); choose a folder whose path has none"
        )
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name or "job").strip("_") or "job"
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    folder = work / f"{slug}_{stamp}_{secrets.token_hex(3)}"
    folder.mkdir(parents=True)
    return folder
