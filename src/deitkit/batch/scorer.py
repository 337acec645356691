"""Score Items in batches: decode each on its own, so one bad item never spoils its batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from deitkit.batch.items import Item
from deitkit.errors import ImageError
from deitkit.images import load_image
from deitkit.inference import Classifier


@dataclass(frozen=True)
class Scored:
    """An Item's outcome: its probabilities in label order, or why it was skipped."""

    item: Item
    probs: np.ndarray | None = None
    error: str = ""


def decode_item(classifier: Classifier, item: Item) -> Image.Image:
    """Decode an image file or base64 text into RGB under the classifier's image limits.

    Raises:
        ImageError: the item is unusable; `reason` says why without repeating its name.
    """
    if item.error:
        raise ImageError(item.error, source=item.file_name)
    if item.path is not None:
        return load_image(
            item.path, limits=classifier.limits, min_size=classifier.transform.decode_hint
        )
    return classifier.decode_input(item.text, source=item.file_name)


def score_items(classifier: Classifier, items: Sequence[Item]) -> list[Scored]:
    """Decode every item, then predict the good ones in one `predict_images` call.

    `predict_images` splits the call into forward passes of `classifier.max_batch_size`.

    Returns:
        One Scored per item, in order; bad items carry the reason (one line) and no probs.
    """
    images: list[Image.Image] = []
    outcomes: list[Scored | int] = []
    for item in items:
        try:
            image = decode_item(classifier, item)
        except ImageError as err:
            # Pillow messages can span lines; the output keeps one row per item.
            outcomes.append(Scored(item, error=" ".join(err.reason.split())))
            continue
        outcomes.append(len(images))
        images.append(image)
    probs = classifier.predict_images(images) if images else None
    return [
        outcome if isinstance(outcome, Scored) else Scored(items[i], probs=probs[outcome])
        for i, outcome in enumerate(outcomes)
    ]
