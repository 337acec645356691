"""`deitkit predict`: classify image files with a packaged model or a checkpoint folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from deitkit.cli.options import model_option

if TYPE_CHECKING:
    from deitkit.inference import Classifier
    from deitkit.inference.scoring import Scored


@click.command("predict")
@model_option
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Labels per image."
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Multilabel threshold for every label (default: the model's, per label where it has "
    "them).",
)
def predict(
    model_path: Path, images: tuple[Path, ...], top_k: int, threshold: float | None
) -> None:
    """Print each image's most probable labels; exit 1 if any image cannot be read.

    For multilabel models, `*` marks the labels at or over the threshold (the predicted ones):
    --threshold for every label, else the model's per-label thresholds, else its threshold.
    """
    from deitkit.inference import load_classifier
    from deitkit.inference.scoring import Item, score_batches

    classifier = load_classifier(model_path, threshold=threshold)
    multilabel = classifier.task.is_multilabel
    width = max(len("image"), *(len(str(path)) for path in images))
    marker = ""
    if multilabel:
        at = "each label's own threshold" if classifier.thresholds else f"{classifier.threshold:g}"
        marker = f" (* = at or over {at})"
    click.echo(f"{'image':<{width}}  top {top_k}{marker}")
    failed = 0
    # Rows appear a batch at a time, as they are scored.
    for batch in score_batches(classifier, (Item(str(path), path=path) for path in images)):
        for scored in batch:
            click.echo(f"{scored.item.path!s:<{width}}  {_row(classifier, scored, top_k)}")
        failed += sum(1 for scored in batch if scored.probs is None)
    if failed:
        click.echo(f"{failed} of {len(images)} images could not be read", err=True)
        raise SystemExit(1)


def _row(classifier: Classifier, scored: Scored, top_k: int) -> str:
    """`error: why`, or the top labels with their probabilities (`*` marks predicted ones)."""
    if scored.probs is None:
        return f"error: {scored.error}"
    (prediction,) = classifier.predictions([scored.probs])
    chosen = set(prediction.predicted()) if classifier.task.is_multilabel else set()
    return "  ".join(
        f"{label}{'*' if label in chosen else ''} {score:.3f}"
        for label, score in prediction.top_k(top_k)
    )
