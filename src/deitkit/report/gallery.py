"""The worst mistakes: which images, and their small thumbnails."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from deitkit.errors import DeitkitError
from deitkit.images import load_image
from deitkit.report.data import ReportData
from deitkit.report.outcomes import Outcomes

MAX_MISTAKES = 24
THUMBNAIL_SIDE = 128  # pixels; the page shows every thumbnail in a box this size
_JPEG_QUALITY = 75


@dataclass(frozen=True)
class Mistake:
    """One wrongly predicted image.

    Attributes:
        index: Its row in the data.
        name: How the data names it.
        true: Its true label(s).
        predicted: The predicted label(s).
        score: Multiclass: the probability of the predicted class; multilabel: the summed
            error |truth - probability| over its labels.
    """

    index: int
    name: str
    true: tuple[str, ...]
    predicted: tuple[str, ...]
    score: float


@dataclass(frozen=True)
class Thumbnail:
    """An encoded small picture (`mime` as in a data: URI), or why there is none."""

    mime: str | None
    data: bytes | None
    error: str | None


def worst_mistakes(
    data: ReportData, outcomes: Outcomes, *, limit: int = MAX_MISTAKES
) -> list[Mistake]:
    """The `limit` worst wrong predictions, worst first.

    Multiclass: the most confident wrong predictions. Multilabel: among images whose
    predicted set differs from the true one, the largest summed |truth - probability|.
    """
    probs = np.asarray(data.probs, dtype=np.float64)
    wrong = (outcomes.pred_bin != outcomes.true_bin).any(axis=1)
    if data.task.is_multilabel:
        badness = np.abs(outcomes.true_bin - probs).sum(axis=1)
    else:
        badness = probs.max(axis=1)
    rows = np.flatnonzero(wrong)
    # Stable sort on the negated score: ties keep data order, so the page is reproducible.
    rows = rows[np.argsort(-badness[rows], kind="stable")][:limit]
    return [
        Mistake(
            index=int(i),
            name=data.image_names[i],
            true=_names(data.labels, outcomes.true_bin[i]),
            predicted=_names(data.labels, outcomes.pred_bin[i]),
            score=float(badness[i]),
        )
        for i in rows
    ]


def thumbnail(path: Path, *, side: int = THUMBNAIL_SIDE) -> Thumbnail:
    """`path` shrunk to fit `side` x `side`, as PNG or JPEG, whichever is smaller.

    PNG wins for flat or tiny images (digits, drawings), JPEG for photographs. An image that
    cannot be read gives a Thumbnail with the reason instead of raising: one bad file must not
    cost the whole report.
    """
    try:
        # deitkit's own decoder: size limits from the header, EXIF orientation, RGB, and JPEGs
        # decoded at a reduced scale close to the thumbnail's size.
        image = load_image(path, min_size=(side, side))
        image.thumbnail((side, side))
    except (DeitkitError, OSError, ValueError, Image.DecompressionBombError) as error:
        return Thumbnail(None, None, str(error) or type(error).__name__)
    encoded = []
    for fmt, options in (("PNG", {"optimize": True}), ("JPEG", {"quality": _JPEG_QUALITY})):
        out = BytesIO()
        image.save(out, format=fmt, **options)
        encoded.append((len(out.getvalue()), f"image/{fmt.lower()}", out.getvalue()))
    _, mime, payload = min(encoded)
    return Thumbnail(mime, payload, None)


def _names(labels: tuple[str, ...], indicator: np.ndarray) -> tuple[str, ...]:
    return tuple(labels[i] for i in np.flatnonzero(indicator))
