"""Request inputs (base64 text or http(s) URLs) decoded into RGB images, errors naming the index."""

from __future__ import annotations

import re
from collections.abc import Callable

from PIL import Image

from deitkit.errors import ImageError
from deitkit.image_modes import Reduce
from deitkit.images import (
    DEFAULT_LIMITS,
    ImageLimits,
    PixelBudget,
    decode_base64_image,
    decode_image,
)

# Fetches a URL's bytes (refusing private addresses, capping size and time), or raises ImageError.
FetchUrl = Callable[[str], bytes]

_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


def decode_input(
    value: object,
    *,
    source: str,
    limits: ImageLimits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
    reduce: Reduce | None = None,
    budget: PixelBudget | None = None,
    fetch_url: FetchUrl | None = None,
) -> Image.Image:
    """Decode one input: base64 text (see `deitkit.images.decode_base64`) or an http(s) URL.

    Args:
        value: The input as received.
        source: Names the input in errors ("image 3").
        limits: Checked before any pixel is decoded.
        min_size: Smallest (width, height) the preprocessing needs (lets JPEGs decode faster).
        reduce: Reduces the decoded image to what the preprocessing needs (see
            `deitkit.images.decode_image`).
        budget: The request's pixel budget, charged from the header before decoding.
        fetch_url: Downloads URL inputs; None refuses them.

    Raises:
        ImageError: the input is not a string, a URL cannot be used, or the image is bad; the
            message starts with `source`.
    """
    if not isinstance(value, str):
        raise ImageError(
            f"expected a string (base64 image or http(s) URL), got {type(value).__name__}",
            source=source,
        )
    text = value.strip()
    match = _URL.match(text)
    if match is None:
        return decode_base64_image(
            value, source=source, limits=limits, min_size=min_size, reduce=reduce, budget=budget
        )
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise ImageError(
            f"{scheme}:// URLs are not supported; send base64 image data or an http(s) URL",
            source=source,
        )
    if fetch_url is None:
        raise ImageError(
            f"URL inputs are not enabled here ({_short(text)}); send base64 image data",
            source=source,
        )
    try:
        data = fetch_url(text)
    except ImageError as err:
        raise ImageError(err.reason, source=source) from None
    return decode_image(
        data, source=source, limits=limits, min_size=min_size, reduce=reduce, budget=budget
    )


def _short(url: str, limit: int = 60) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."
