"""`deitkit data ...`: validate a dataset, import a zip, write the embedded sample data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deitkit.tasks import Task

TASK_CHOICE = click.Choice([t.value for t in Task])
# Not click.Path(exists=True): a hub id or PATH:split names no file; the reader says what is amiss.
DATA_ARGUMENT = click.Path(path_type=str)


def hf_column_options(command):
    """--image-column and --label-column: a Hugging Face dataset's columns (default: detected)."""
    command = click.option(
        "--label-column", default=None, help="Label column of a Hugging Face dataset (detected)."
    )(command)
    return click.option(
        "--image-column", default=None, help="Image column of a Hugging Face dataset (detected)."
    )(command)


@click.group()
def data() -> None:
    """Check, import and generate image-classification datasets."""


@data.command("validate")
@click.argument("path", type=DATA_ARGUMENT)
@click.option("--task", type=TASK_CHOICE, default=None, help="Expected task (default: detected).")
@click.option(
    "--max-bad-fraction",
    type=click.FloatRange(0.0, 1.0),
    default=0.01,
    show_default=True,
    help="Unreadable images are skipped up to this fraction; above it validation fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@hf_column_options
def validate(
    path: str,
    task: str | None,
    max_bad_fraction: float,
    as_json: bool,
    image_column: str | None,
    label_column: str | None,
) -> None:
    """Report images per label, image sizes and problems; exit 1 when the data has errors.

    PATH is any layout finetune reads; for a Hugging Face dataset with several splits, the
    train split or the one named as PATH:split.
    """
    from deitkit.data.hf_source import HfOptions
    from deitkit.data.validate import validate_dataset

    report = validate_dataset(
        path,
        task=task,
        max_bad_fraction=max_bad_fraction,
        progress=True,  # a bar in a terminal, a line per tenth elsewhere (deitkit.progress)
        hf=HfOptions(image_column, label_column),
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())
    if not report.ok:
        raise SystemExit(1)


@data.command("import")
@click.argument("source", metavar="DATASET", type=DATA_ARGUMENT)
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
@hf_column_options
def import_(
    source: str,
    out_dir: Path,
    split: float | None,
    seed: int,
    task: str | None,
    image_column: str | None,
    label_column: str | None,
) -> None:
    """Bring a dataset into --out and write JSONL annotations and MLTable folders beside it.

    A ZIP is extracted safely; a folder (class folders or images/ + labels.csv) is copied, so
    your own folder is never changed. A Hugging Face dataset (save_to_disk folder, parquet or
    arrow, imagefolder with metadata, hub id; its train split or PATH:split) has its images
    written out as files.
    """
    from deitkit.data.hf_source import HfOptions
    from deitkit.data.importer import import_dataset

    hf = HfOptions(image_column, label_column)
    result = import_dataset(source, out_dir, split=split, seed=seed, task=task, hf=hf)
    click.echo(
        f"imported {result.n_train + result.n_validation} images, {len(result.labels)} labels "
        f"({result.task}): {result.n_train} train, {result.n_validation} validation"
    )
    for name in ("train_jsonl", "validation_jsonl", "train_mltable", "validation_mltable"):
        click.echo(f"  {name:<19} {getattr(result, name)}")


@data.group("sample")
def sample() -> None:
    """Write the embedded sample datasets (scikit-learn's handwritten digits)."""


# Where a sample command writes (both sample commands take it alike).
_sample_out = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the sample into.",
)


@sample.command("digits")
@_sample_out
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
@_sample_out
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
