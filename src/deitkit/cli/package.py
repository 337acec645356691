"""`deitkit package`: a fine-tuned checkpoint folder → an MLflow model folder."""

from __future__ import annotations

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
@click.option(
    "--validation",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Labelled data (any layout `deitkit data validate` reads) on which each int8/bf16/ONNX "
    "engine must agree with fp32 to be allowed to serve; without it only fp32 and bf16 serve.",
)
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
def package(
    checkpoint: Path, output: Path, threshold: float, validation: Path | None, overwrite: bool
) -> None:
    """Package a checkpoint as an MLflow pyfunc: models-from-code, safetensors, no pickles.

    The package also holds the model exported to ONNX (fp32, checked against torch, and dynamic
    int8) and engines.json, which says which engines may serve it.
    """
    from deitkit.inference import packaged_checkpoint, read_checkpoint
    from deitkit.inference.engines import read_record
    from deitkit.packaging import package_model

    path = package_model(
        checkpoint, output, threshold=threshold, overwrite=overwrite, validation=validation
    )
    folder = packaged_checkpoint(path)
    info = read_checkpoint(folder)
    record = read_record(folder)
    click.echo(f"packaged {checkpoint} → {path}")
    click.echo(f"  task       {info.task.value}")
    click.echo(f"  labels     {len(info.labels)}: {', '.join(info.labels[:10])}")
    click.echo(f"  threshold  {info.threshold}")
    for name, verdict in record.verdicts.items():
        click.echo(f"  {name:<10} {'allowed' if verdict.allowed else 'refused'}: {verdict.reason}")
