"""One command job run locally: its inputs mounted, its command rendered, its processes run.

The job folder follows an Azure ML node's layout: `exe/wd/` is the working folder (the
component's `code:` copied in, if it has one), `cap/data-capability/wd/` holds the mounted
inputs and the outputs (`mounts`), `user_logs/` the processes' output (`std_log.txt`, or
`std_log_process_<rank>.txt` under a PyTorch distribution), and `job.json` the record.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deitkit.azure.local import mounts, records
from deitkit.azure.local.command import render_command, render_value
from deitkit.azure.local.components import LoadedComponent
from deitkit.azure.local.environment import job_environment
from deitkit.azure.local.processes import ProcessResult, rank_environments, run_processes
from deitkit.azure.local.tracking import TrackedRun, Tracker
from deitkit.azure.local.values import DATA_TYPES, with_defaults
from deitkit.errors import ConfigError, DeitkitError

WORKING_DIR = Path("exe/wd")
LOGS_DIR = Path("user_logs")


@dataclass(frozen=True)
class OutputRef:
    """An input bound to another step's output: `${{parent.jobs.<step>.outputs.<output>}}`."""

    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.outputs.{self.output}"


@dataclass(frozen=True)
class Step:
    """A command job ready to run: its component and the value bound to each input.

    `inputs` holds checked values: primitives, a `Path` or an `OutputRef` for data, None for
    an input given nothing (its default, if any, applies). `process_count` is None without a
    PyTorch distribution.
    """

    name: str
    component: LoadedComponent
    inputs: Mapping[str, Any]
    process_count: int | None = None
    environment_variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def depends_on(self) -> list[str]:
        """The steps whose outputs this one reads, in input order."""
        found = [v.step for v in self.inputs.values() if isinstance(v, OutputRef)]
        return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Context:
    """What every job of one local run shares."""

    datastore: Path | None = None
    tracker: Tracker | None = None
    parent_run: TrackedRun | None = None
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    echo: Callable[[str], None] = lambda line: None


@dataclass(frozen=True)
class JobResult:
    """A completed job: its folder, its record and its output folders."""

    name: str
    folder: Path
    record: dict[str, Any]
    outputs: dict[str, Path]


class LocalJobError(DeitkitError):
    """A job failed (a process exited non-zero, ran too long, or wrote into an input)."""

    def __init__(self, message: str, *, record: Path):
        self.record = record
        super().__init__(message)


def check_renders(step: Step) -> None:
    """Render the step's command with stand-in values: any error shows before anything runs."""
    entity = step.component.entity
    values = with_defaults(dict(entity.inputs), step.inputs)
    render_command(
        entity.command,
        {name: None if value is None else "x" for name, value in values.items()},
        {name: "x" for name in entity.outputs},
        where=step.component.source,
    )


def run_step(
    step: Step, folder: Path, run_id: str, ctx: Context, upstream: Mapping[OutputRef, Path]
) -> JobResult:
    """Run `step` in the new folder `folder` and return its outputs.

    Raises:
        LocalJobError: a process failed or timed out, or the job wrote into an input.
        ConfigError: an upstream output is not what this step's input reads.
    """
    entity = step.component.entity
    where = f"step {step.name}"
    workdir = folder / WORKING_DIR
    workdir.mkdir(parents=True)
    if entity.code:
        _copy_code(step.component, workdir)
    rendered, shown_inputs, mounted = _mount_inputs(step, folder, upstream)
    outputs = {name: mounts.make_output(name, folder) for name in entity.outputs}
    command = render_command(
        entity.command, rendered, {k: str(v) for k, v in outputs.items()}, where=where
    )
    tracked = ctx.tracker.start(step.name, parent=ctx.parent_run) if ctx.tracker else None
    env, shown_env = job_environment(
        run_id=run_id,
        tracked=tracked,
        datastore=ctx.datastore,
        variables={**ctx.environment_variables, **step.environment_variables},
    )
    distributed = step.process_count is not None
    ranks = rank_environments(step.process_count or 1, distributed=distributed)
    logs = [
        folder / LOGS_DIR / (f"std_log_process_{i}.txt" if distributed else "std_log.txt")
        for i in range(len(ranks))
    ]
    record: dict[str, Any] = {
        "name": step.name,
        "run_id": run_id,
        "component": {
            "name": entity.name,
            "version": entity.version,
            "source": step.component.source,
        },
        "status": records.RUNNING,
        "started": records.now(),
        "command": command,
        "inputs": shown_inputs,
        "outputs": {
            n: {"type": entity.outputs[n].type, "path": str(p)} for n, p in outputs.items()
        },
        "distribution": (
            {"type": "pytorch", "process_count_per_instance": step.process_count}
            if distributed
            else None
        ),
        "environment": shown_env,
        "working_dir": str(workdir),
    }
    record_path = folder / records.JOB_RECORD
    records.write_record(record_path, record)
    ctx.echo(f"[{step.name}] {command}")
    before = {path: mounts.fingerprint(path) for path in mounted}
    start = time.monotonic()
    try:
        results = run_processes(
            command,
            cwd=workdir,
            env=env,
            ranks=ranks,
            logs=logs,
            timeout_s=ctx.timeout_s,
        )
        written = {p: mounts.changed(before[p], mounts.fingerprint(p)) for p in mounted}
    finally:
        for path in mounted:
            mounts.set_writable(path, True)
    failed = _failure(results)
    written = {p: w for p, w in written.items() if w}
    succeeded = failed is None and not written
    if tracked is not None and ctx.tracker is not None:
        ctx.tracker.end(tracked, succeeded=succeeded)
    record.update(
        status=records.COMPLETED if succeeded else records.FAILED,
        duration_s=round(time.monotonic() - start, 2),
        exit_code=failed.exit_code if failed else 0,
        processes=[
            {"rank": r.rank, "exit_code": r.exit_code, "log": str(r.log), "timed_out": r.timed_out}
            for r in results
        ],
    )
    if written:
        record["inputs_written"] = {str(p): w for p, w in written.items()}
    records.write_record(record_path, record)
    ctx.echo(f"[{step.name}] {record['status']} in {record['duration_s']} s ({record_path})")
    if failed is not None:
        raise LocalJobError(
            _failure_message(step.name, failed, ranks=distributed), record=record_path
        )
    if written:
        path, names = next(iter(written.items()))
        raise LocalJobError(
            f"{where} wrote into its input {path} ({', '.join(names[:3])}); Azure ML mounts "
            "inputs read-only (ro_mount), where this write fails; write to an output instead",
            record=record_path,
        )
    return JobResult(step.name, folder, record, outputs)


def _mount_inputs(
    step: Step, folder: Path, upstream: Mapping[OutputRef, Path]
) -> tuple[dict[str, str | None], dict[str, Any], list[Path]]:
    """Each input's rendered value (data mounted), its record entry, and the mount folders."""
    entity = step.component.entity
    rendered: dict[str, str | None] = {}
    shown: dict[str, Any] = {}
    mounted: list[Path] = []
    for name, value in with_defaults(dict(entity.inputs), step.inputs).items():
        kind = entity.inputs[name].type
        if value is None:
            rendered[name] = None
        elif kind in DATA_TYPES:
            source = upstream[value] if isinstance(value, OutputRef) else Path(value)
            origin = f"step {step.name}: input {name!r} ({_origin(value)})"
            path = mounts.mount_input(source, name, kind, folder, origin=origin)
            mounted.append(path if path.is_dir() else path.parent)
            rendered[name] = str(path)
        else:
            rendered[name] = render_value(value)
        shown[name] = {"type": kind, "value": rendered[name], "from": _origin(value)}
    return rendered, shown, mounted


def _origin(value: Any) -> str | None:
    if isinstance(value, OutputRef):
        return str(value)
    return str(value) if isinstance(value, Path) else None


def _copy_code(component: LoadedComponent, workdir: Path) -> None:
    entity = component.entity
    code = Path(str(entity.code))
    if not code.is_absolute():
        code = Path(entity.base_path) / code
    if not code.exists():
        raise ConfigError(f"{component.source}: code {entity.code!r}: no such folder ({code})")
    if code.is_dir():
        shutil.copytree(code, workdir, dirs_exist_ok=True)
    else:
        shutil.copy2(code, workdir)


def _failure(results: list[ProcessResult]) -> ProcessResult | None:
    """The process that failed the job: the first that exited on its own with an error."""
    failed = [r for r in results if r.exit_code != 0]
    if not failed:
        return None
    own = [r for r in failed if r.exit_code > 0]
    return (own or failed)[0]


def _failure_message(name: str, failed: ProcessResult, *, ranks: bool) -> str:
    who = f"process {failed.rank}" if ranks else "the command"
    why = "ran past the time limit" if failed.timed_out else f"exited with {failed.exit_code}"
    return f"step {name} failed: {who} {why}; the end of {failed.log}:\n{failed.tail()}"
