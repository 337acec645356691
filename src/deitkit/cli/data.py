"""`deitkit data ...`: validate a dataset, import a zip, write the embedded sample data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from deitkit.tasks import Task

TASK_CHOICE = click.Choice([t.value for t in Task])


@click.group()
def data() -> None:
    """Check, import and generate image-classification datasets."""


@data.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--task", type=TASK_CHOICE, default=None, help="Expected task (default: detected).")
@click.option(
    "--max-bad-fraction",
    type=click.FloatRange(0.0, 1.0),
    default=0.01,
    show_default=True,
    help="Unreadable images are skipped up to this fraction; above it validation fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(path: Path, task: str | None, max_bad_fraction: float, as_json: bool) -> None:
    """Report images per label, image sizes and problems; exit 1 when the data has errors."""
    from deitkit.data.validate import validate_dataset

    report = validate_dataset(
        path, task=task, max_bad_fraction=max_bad_fraction, progress=sys.stderr.isatty()
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())
    if not report.ok:
        raise SystemExit(1)


@data.command("import")
@click.argument("source", metavar="ZIP_OR_FOLDER", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to import into (images, JSONL annotations, MLTable folders).",
)
@click.option(
    "--split",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Validation fraction for a seeded stratified split (default: every 5th image).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of --split.")
@click.option("--task", type=TASK_CHOICE, default=None, help="Expected task (default: detected).")
def import_(source: Path, out_dir: Path, split: float | None, seed: int, task: str | None) -> None:
    """Bring a dataset into --out and write JSONL annotations and MLTable folders beside it.

    A ZIP is extracted safely; a folder (class folders or images/ + labels.csv) is copied, so
    your own folder is never changed.
    """
    from deitkit.data.importer import import_dataset

    result = import_dataset(source, out_dir, split=split, seed=seed, task=task)
    click.echo(
        f"imported {result.n_train + result.n_validation} images, {len(result.labels)} labels "
        f"({result.task}): {result.n_train} train, {result.n_validation} validation"
    )
    for name in ("train_jsonl", "validation_jsonl", "train_mltable", "validation_mltable"):
        click.echo(f"  {name:<19} {getattr(result, name)}")


@data.group("sample")
def sample() -> None:
    """Write the embedded sample datasets (scikit-learn's handwritten digits)."""


@sample.command("digits")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the sample into.",
)
@click.option(
    "--size",
    type=click.IntRange(8, 512),
    default=64,
    show_default=True,
    help="Side of the square images in pixels (the 8x8 scans are scaled up).",
)
def sample_digits(out_dir: Path, size: int) -> None:
    """1,797 digit scans as RGB PNGs in class folders 0…9 (multiclass)."""
    from deitkit.data.digits import write_digits

    click.echo(f"wrote the digits sample to {write_digits(out_dir, size=size)}")


@sample.command("digits-multilabel")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the sample into.",
)
@click.option(
    "--size",
    type=click.IntRange(16, 512),
    default=64,
    show_default=True,
    help="Side of the square images in pixels.",
)
@click.option(
    "--count",
    type=click.IntRange(10, 100_000),
    default=1000,
    show_default=True,
    help="Images to compose.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the digits and places chosen."
)
def sample_digits_multilabel(out_dir: Path, size: int, count: int, seed: int) -> None:
    """2–4 digits composed per image, with labels.csv (multilabel)."""
    from deitkit.data.digits import write_digits_multilabel

    path = write_digits_multilabel(out_dir, size=size, count=count, seed=seed)
    click.echo(f"wrote the multilabel digits sample to {path}")
