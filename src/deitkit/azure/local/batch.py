"""A batch deployment's scoring job run locally, as Azure ML's parallel-run runtime runs it.

The deployment YAML is loaded with azure-ai-ml; its settings (`mini_batch_size`,
`output_action`, `output_file_name`, `error_threshold`, `retry_settings`, `logging_level`,
`environment_variables`) drive the loop in `batch_worker`, which runs in a fresh process
with `AZUREML_MODEL_DIR` set as Azure sets it: the model's root, whose one subfolder is the
registered model folder. Inputs are a folder (a `uri_folder`: every file under it, sorted,
`mini_batch_size` paths per `run()`) or one file (a `uri_file`: one mini-batch holding it),
each a read-only copy. One instance with one worker process runs every mini-batch in turn:
`instance_count` and `max_concurrency_per_instance` are not emulated.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.assets.yaml_loading import quiet_azure
from deitkit.azure.entities import load_entity
from deitkit.azure.local import mounts, records
from deitkit.azure.local.environment import job_environment
from deitkit.azure.local.job import LOGS_DIR, WORKING_DIR, LocalJobError
from deitkit.azure.local.processes import run_processes
from deitkit.azure.local.runner import DEFAULT_WORK_DIR, new_run_folder
from deitkit.errors import ConfigError

MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
OUTPUT_DIR_ENV = "AZUREML_BI_OUTPUT_PATH"
MODELS_DIR = Path("azureml-models")
INPUT_NAME = "input_data"
JOB_SPEC = "batch_job.json"
SUMMARY = "summary.json"
# The defaults azure-ai-ml and the batch deployment YAML reference state.
DEFAULTS = {
    "mini_batch_size": 10,
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "error_threshold": -1,
    "max_retries": 3,
    "timeout": 30,
    "logging_level": "info",
}
_MODEL_REF = re.compile(r"^(?:azureml:)?(?P<name>[^:@/]+)(?:[:@](?P<version>[^/]+))?$")


@dataclass(frozen=True)
class BatchRun:
    """A finished local batch job: its folder, the output file and the runtime's counts."""

    run_id: str
    folder: Path
    output_file: Path | None
    summary: dict[str, Any]


def run_local_batch(
    deployment: str | Path,
    *,
    model: str | Path,
    input: str | Path,
    output: str | Path,
    work_dir: str | Path | None = None,
    environment_variables: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> BatchRun:
    """Score `input` with the batch deployment at `deployment` and the model folder `model`.

    Args:
        deployment: The batch deployment YAML (with `code_configuration`).
        model: The model folder the deployment would get (a packaged MLflow model, say).
        input: A folder of files, or one file (a CSV of base64 images, say).
        output: The job's output folder (new or empty); the output file is written there.
        work_dir: Where the job's folder is made (default `./azureml-local-runs`).
        environment_variables: Set for the scoring process, besides the deployment's own.
        timeout_s: Stop the whole job after this long.
        echo: Called with a line as the job starts and ends.

    Raises:
        ConfigError: the deployment has no scoring script, or a path is wrong; nothing ran.
        LocalJobError: `init()` failed, or the failed files exceeded `error_threshold`.
    """
    from azure.ai.ml import load_batch_deployment

    echo = echo or (lambda line: None)
    path = Path(deployment)
    with quiet_azure():
        entity = load_entity(load_batch_deployment, path)
    settings = _settings(entity)
    code = entity.code_configuration
    if code is None or not code.scoring_script:
        raise ConfigError(
            f"{path}: no code_configuration.scoring_script; Azure generates the driver of a "
            "no-code MLflow deployment, which the local runner does not emulate"
        )
    code_dir = (path.parent / str(code.code)).resolve()
    if not (code_dir / code.scoring_script).is_file():
        raise ConfigError(f"{path}: scoring script {code_dir / code.scoring_script} not found")
    model_dir, source = Path(model).resolve(), Path(input).resolve()
    if not model_dir.is_dir():
        raise ConfigError(f"--model {model}: no such folder")
    if not source.exists():
        raise ConfigError(f"--input {input}: no such file or folder")
    out = Path(output).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--output {output}: not an empty folder (each job writes a new one)")
    folder = new_run_folder(work_dir if work_dir is not None else DEFAULT_WORK_DIR, entity.name)
    run_id = folder.name
    workdir = folder / WORKING_DIR
    shutil.copytree(code_dir, workdir)
    model_root = _install_model(model_dir, entity.model, folder)
    kind = "uri_file" if source.is_file() else "uri_folder"
    mounted = mounts.mount_input(source, INPUT_NAME, kind, folder, origin=f"--input {input}")
    files = [mounted] if mounted.is_file() else sorted(p for p in mounted.rglob("*") if p.is_file())
    size = settings["mini_batch_size"]
    out.mkdir(parents=True, exist_ok=True)
    append = settings["output_action"] == "append_row"
    output_file = out / settings["output_file_name"] if append else None
    job = {
        "scoring_script": str(workdir / code.scoring_script),
        "mini_batches": [[str(f) for f in files[i : i + size]] for i in range(0, len(files), size)],
        "output_file": str(output_file) if output_file else None,
        "error_threshold": settings["error_threshold"],
        "max_retries": settings["max_retries"],
        "timeout_s": settings["timeout"],
        "logging_level": settings["logging_level"],
        "summary_file": str(folder / SUMMARY),
    }
    (folder / JOB_SPEC).write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
    env, shown = job_environment(
        run_id=run_id,
        tracked=None,
        datastore=None,
        variables={
            MODEL_DIR_ENV: str(model_root),
            OUTPUT_DIR_ENV: str(out),
            **settings["environment_variables"],
            **(environment_variables or {}),
        },
    )
    command = shlex.join(
        [sys.executable, "-m", "deitkit.azure.local.batch_worker", str(folder / JOB_SPEC)]
    )
    log = folder / LOGS_DIR / "std_log.txt"
    record: dict[str, Any] = {
        "run_id": run_id,
        "deployment": str(path.resolve()),
        "status": records.RUNNING,
        "started": records.now(),
        "settings": settings,
        "model_dir": str(model_root),
        "input": {"type": kind, "path": str(mounted), "from": str(source)},
        "output": str(out),
        "environment": shown,
        "log": str(log),
    }
    records.write_record(folder / records.JOB_RECORD, record)
    echo(f"[{run_id}] {len(files)} files in {len(job['mini_batches'])} mini-batches")
    start = time.monotonic()
    try:
        (result,) = run_processes(
            command, cwd=workdir, env=env, ranks=[{}], logs=[log], timeout_s=timeout_s
        )
    finally:
        mounts.set_writable(mounted if mounted.is_dir() else mounted.parent, True)
        mounts.set_writable(model_root, True)
    summary_file = folder / SUMMARY
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    succeeded = result.exit_code == 0
    record.update(
        status=records.COMPLETED if succeeded else records.FAILED,
        duration_s=round(time.monotonic() - start, 2),
        exit_code=result.exit_code,
        summary=summary,
    )
    records.write_record(folder / records.JOB_RECORD, record)
    echo(
        f"[{run_id}] {record['status']} in {record['duration_s']} s ({folder / records.JOB_RECORD})"
    )
    if not succeeded:
        why = next((e for e in reversed(summary.get("errors", [])) if "mini_batch" not in e), None)
        reason = json.dumps(why) if why else f"exit code {result.exit_code}"
        raise LocalJobError(
            f"batch job {run_id} failed ({reason}); the end of {log}:\n{result.tail()}",
            record=folder / records.JOB_RECORD,
        )
    return BatchRun(run_id, folder, output_file, summary)


def _settings(entity: Any) -> dict[str, Any]:
    """The runtime settings of the deployment, azure-ai-ml's defaults where it gives none."""
    settings = entity.settings
    retry = getattr(settings, "retry_settings", None)
    found = {
        "mini_batch_size": settings.mini_batch_size,
        "output_action": settings.output_action and str(settings.output_action).lower(),
        "output_file_name": settings.output_file_name,
        "error_threshold": settings.error_threshold,
        "max_retries": getattr(retry, "max_retries", None),
        "timeout": getattr(retry, "timeout", None),
        "logging_level": settings.logging_level,
    }
    resolved = {k: DEFAULTS[k] if v is None else v for k, v in found.items()}
    resolved["environment_variables"] = dict(settings.environment_variables or {})
    return resolved


def _install_model(model_dir: Path, reference: Any, folder: Path) -> Path:
    """A read-only copy of the model at `<root>/<name>/<version>/<folder name>`; the root.

    Azure's `AZUREML_MODEL_DIR` is the model's root; the registered folder is its one
    subfolder (samples find it with `os.listdir(root)[0]`).
    """
    match = _MODEL_REF.match(str(reference or ""))
    name = match["name"] if match else "model"
    version = match["version"] if match and match["version"] not in (None, "latest") else "1"
    root = folder / MODELS_DIR / name / version
    shutil.copytree(model_dir, root / model_dir.name)
    mounts.set_writable(root, False)
    return root
