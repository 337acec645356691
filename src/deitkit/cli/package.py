"""`deitkit package`: a fine-tuned checkpoint folder → an MLflow model folder."""

from __future__ import annotations

import logging
from pathlib import Path

import click


@click.command("package")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Hugging Face checkpoint folder (deitkit finetune writes OUT/model).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="MLflow model folder to create.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Default multilabel threshold (the model's `threshold` param).",
)
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
def package(checkpoint: Path, output: Path, threshold: float, overwrite: bool) -> None:
    """Package a checkpoint as an MLflow pyfunc: models-from-code, safetensors, no pickles."""
    from deitkit.inference import packaged_checkpoint, read_checkpoint
    from deitkit.packaging import package_model

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    path = package_model(checkpoint, output, threshold=threshold, overwrite=overwrite)
    info = read_checkpoint(packaged_checkpoint(path))
    click.echo(f"packaged {checkpoint} → {path}")
    click.echo(f"  task       {info.task.value}")
    click.echo(f"  labels     {len(info.labels)}: {', '.join(info.labels[:10])}")
    click.echo(f"  threshold  {info.threshold}")
