"""`deitkit quickstart`: the main job end to end on the embedded defaults, with a timed summary."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from deitkit.tasks import Task

# Stages of the main job that later work adds; listed so the summary is honest about them.
NOT_BUILT_YET = (
    "finetune (deitkit finetune)",
    "evaluate (deitkit evaluate)",
    "package (deitkit package)",
    "online endpoint (deitkit serve)",
    "batch endpoint (deitkit batch-score)",
)


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("quickstart-output"),
    show_default=True,
    help="Where every output goes (recreated on each run).",
)
@click.option(
    "--task",
    type=click.Choice([t.value for t in Task]),
    default=Task.MULTICLASS.value,
    show_default=True,
)
def quickstart(out_dir: Path, task: str) -> None:
    """Build the digits sample, validate it, and run the stages built so far."""
    from deitkit.data.samples import write_digits, write_digits_multilabel
    from deitkit.data.validate import validate_dataset

    if out_dir.exists():
        # Only our own previous output is replaced; anything else stays untouched.
        if not (out_dir / ".deitkit-quickstart").exists():
            raise click.UsageError(
                f"{out_dir} exists and is not a previous quickstart output; choose another --out"
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / ".deitkit-quickstart").touch()

    timings: dict[str, float] = {}
    start = time.perf_counter()
    data_dir = out_dir / "data"
    if Task(task).is_multilabel:
        write_digits_multilabel(data_dir)
    else:
        write_digits(data_dir)
    timings["sample data"] = time.perf_counter() - start

    start = time.perf_counter()
    report = validate_dataset(data_dir, task=task, progress=True)
    timings["validate"] = time.perf_counter() - start
    click.echo(report.to_text())
    if not report.ok:
        raise click.ClickException("the sample data failed validation (see the report above)")

    click.echo("\n== quickstart summary ==")
    click.echo(
        f"task: {task}; data: {data_dir} ({len(report.dataset)} images, "
        f"{len(report.dataset.labels)} labels)"
    )
    for stage, seconds in timings.items():
        click.echo(f"  {stage:<14} {seconds:6.1f} s  done")
    for stage in NOT_BUILT_YET:
        click.echo(f"  {stage:<14}           not built yet")
