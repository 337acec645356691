"""The scoring pipeline: named inputs decoded one by one, predicted a batch at a time.

Evaluation, `deitkit predict`, batch scoring (local and Azure) and the online scorer all run
inputs through `score_batches`: each item is decoded on its own under the classifier's image
limits and at once reduced to the model's input size (`EvalTransform.reduce`), so only one
full-size image exists at a time; at most `classifier.max_batch_size` items are read at a time,
and the good ones of a batch are predicted in one `Classifier.predict_images` call. An item that
cannot be decoded gets its reason (one line) instead of probabilities, or, with `strict`, stops
the run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from deitkit.errors import ImageError
from deitkit.images import PixelBudget
from deitkit.inference.classifier import Classifier
from deitkit.inference.inputs import FetchUrl


@dataclass(frozen=True)
class Item:
    """One input to score: an image file (`path`), or base64 text or an http(s) URL (`text`).

    Attributes:
        name: Names the item in its error and in outputs (a file name, a path, `image 3`).
        path: The image file, or None for `text`.
        text: The input as received (a string is expected; anything else is refused).
        error: Set when the item is known to be unusable before decoding (a CSV among image
            files that has no `image` column); it is then not decoded.
        fetch_url: Downloads `text` when it is a URL; None: the classifier's `fetch_url`.
    """

    name: str
    path: Path | None = None
    text: object = None
    error: str = ""
    fetch_url: FetchUrl | None = None


@dataclass(frozen=True)
class Scored:
    """An item's outcome: its probabilities in label order, or why it was skipped (one line)."""

    item: Item
    probs: np.ndarray | None = None
    error: str = ""


def decode_item(
    classifier: Classifier, item: Item, *, budget: PixelBudget | None = None
) -> Image.Image:
    """Decode an item into RGB under the classifier's image limits, reduced for its model.

    Args:
        classifier: The model (its limits and preprocessing).
        item: What to decode.
        budget: Pixels the items of one request may hold in all, charged from each header
            before decoding; None: only the classifier's per-image limits.

    Raises:
        ImageError: the item is unusable; its message starts with the item's name, and its
            `reason` says why without the name (`PixelBudgetError` over `budget`).
    """
    if item.error:
        raise ImageError(item.error, source=item.name)
    if item.path is not None:
        return classifier.decode_file(item.path, budget=budget)
    return classifier.decode_input(
        item.text, source=item.name, fetch_url=item.fetch_url, budget=budget
    )


def score_batches(
    classifier: Classifier,
    items: Iterable[Item],
    *,
    strict: bool = False,
    budget: PixelBudget | None = None,
) -> Iterator[list[Scored]]:
    """Score `items` in order, one list of outcomes per batch of `classifier.max_batch_size`.

    `items` is read lazily, a batch at a time, so at most one batch of decoded images is held
    at once however many items there are.

    Args:
        classifier: The model.
        items: What to score.
        strict: Raise the first undecodable item's ImageError instead of skipping the item
            (the online endpoint refuses a whole request over one bad image).
        budget: Pixels all items may hold (see `decode_item`); None: no total.

    Yields:
        One Scored per item of the batch, in order; a skipped item has `error` and no `probs`.

    Raises:
        ImageError: with `strict`, for the first item that cannot be decoded.
    """
    items = iter(items)
    while batch := list(itertools.islice(items, classifier.max_batch_size)):
        yield _score_batch(classifier, batch, strict=strict, budget=budget)


def score_items(
    classifier: Classifier,
    items: Iterable[Item],
    *,
    strict: bool = False,
    budget: PixelBudget | None = None,
) -> list[Scored]:
    """Every outcome of `score_batches`, in order, as one list."""
    batches = score_batches(classifier, items, strict=strict, budget=budget)
    return [scored for batch in batches for scored in batch]


def _score_batch(
    classifier: Classifier, batch: list[Item], *, strict: bool, budget: PixelBudget | None
) -> list[Scored]:
    images: list[Image.Image] = []
    outcomes: list[Scored | int] = []  # a skipped item's outcome, or its row in `images`
    for item in batch:
        try:
            image = decode_item(classifier, item, budget=budget)
        except ImageError as err:
            if strict:
                raise
            # Pillow messages can span lines; every output keeps one line per item.
            outcomes.append(Scored(item, error=" ".join(err.reason.split())))
            continue
        outcomes.append(len(images))
        images.append(image)
    probs = classifier.predict_images(images) if images else None
    return [
        outcome if isinstance(outcome, Scored) else Scored(item, probs=probs[outcome])
        for item, outcome in zip(batch, outcomes, strict=True)
    ]
