"""`deitkit batch-score`: score a folder of images or a base64 CSV into a predictions CSV."""

from __future__ import annotations

from pathlib import Path

import click

from deitkit.cli.options import model_option


@click.command("batch-score")
@model_option
@click.option(
    "--input",
    "source",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Folder of image files (searched recursively) or a CSV with an `image` column of "
    "base64 images (and optionally `file_name`).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Predictions CSV to write: file_name,predicted,probs,labels,error.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the rows an earlier run scored without error (from its unfinished progress, "
    "else from --output) and score only the rest.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per forward pass (default 32).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Multilabel threshold of `predicted` for every label (default: the model's, per label "
    "where it has them).",
)
def batch_score(
    model_path: Path,
    source: Path,
    output: Path,
    resume: bool,
    batch_size: int | None,
    threshold: float | None,
) -> None:
    """Score every image of --input into --output; unreadable images get a row with an error.

    The output appears only when the run completes; until then rows go to a hidden
    `.NAME.partial` file beside it, which `--resume` continues from after an interruption.
    Exits 0 even when some images could not be read: their `error` column says why.
    """
    from deitkit.batch import batch_score as score
    from deitkit.batch.output import partial_path
    from deitkit.inference import MAX_BATCH_SIZE, load_classifier

    classifier = load_classifier(
        model_path, threshold=threshold, max_batch_size=batch_size or MAX_BATCH_SIZE
    )
    try:
        summary = score(
            classifier,
            source,
            output,
            resume=resume,
            threshold=threshold,
            progress=True,  # a bar in a terminal, else a line per tenth (deitkit.progress)
            notify=lambda notice: click.echo(f"note: {notice}", err=True),
        )
    except BaseException:
        partial = partial_path(output)
        if partial.is_file():
            click.echo(
                f"stopped; the rows scored so far are in {partial}: run again with --resume to "
                "continue from them",
                err=True,
            )
        raise
    errors = f", {summary.errors} with an error (see the error column)" if summary.errors else ""
    click.echo(f"rows       {summary.rows}")
    click.echo(f"scored     {summary.scored}{errors}")
    if resume:
        click.echo(f"kept       {summary.kept} from the previous run")
    click.echo(f"output     {summary.output}")
