"""`deitkit predict`: classify image files with a packaged model or a checkpoint folder."""

from __future__ import annotations

from pathlib import Path

import click

from deitkit.cli.options import model_option


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
    help="Multilabel threshold (default: the model's).",
)
def predict(
    model_path: Path, images: tuple[Path, ...], top_k: int, threshold: float | None
) -> None:
    """Print each image's most probable labels; exit 1 if any image cannot be read.

    For multilabel models, `*` marks the labels at or over the threshold (the predicted ones).
    """
    from PIL import Image

    from deitkit.errors import ImageError
    from deitkit.images import load_image
    from deitkit.inference import load_classifier

    classifier = load_classifier(model_path, threshold=threshold)
    multilabel = classifier.task.is_multilabel
    width = max(len("image"), *(len(str(path)) for path in images))
    marker = f" (* = at or over {classifier.threshold:g})" if multilabel else ""
    click.echo(f"{'image':<{width}}  top {top_k}{marker}")
    failed = 0
    # One batch at a time: memory stays bounded and rows appear as they are scored.
    for start in range(0, len(images), classifier.max_batch_size):
        rows: dict[int, str] = {}
        decoded: dict[int, Image.Image] = {}
        batch = images[start : start + classifier.max_batch_size]
        for index, path in enumerate(batch):
            try:
                decoded[index] = load_image(
                    path, limits=classifier.limits, min_size=classifier.transform.decode_hint
                )
            except ImageError as err:
                rows[index] = f"error: {err.reason}"
        predictions = classifier.predict(list(decoded.values()))
        for index, prediction in zip(decoded, predictions, strict=True):
            chosen = set(prediction.predicted()) if multilabel else set()
            rows[index] = "  ".join(
                f"{label}{'*' if label in chosen else ''} {score:.3f}"
                for label, score in prediction.top_k(top_k)
            )
        for index, path in enumerate(batch):
            click.echo(f"{path!s:<{width}}  {rows[index]}")
        failed += len(rows) - len(decoded)
    if failed:
        click.echo(f"{failed} of {len(images)} images could not be read", err=True)
        raise SystemExit(1)
