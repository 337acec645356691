"""Decoded images of any Pillow mode to 8-bit RGB, tile by tile: no full-size temporaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from deitkit.errors import ImageError

# Reduces a decoded image (mode L or RGB) to what the preprocessing needs, e.g.
# `deitkit.transforms.EvalTransform.reduce`.
Reduce = Callable[[Image.Image], Image.Image]

# Pixels converted at a time: each temporary copy of a tile stays a few MB, where converting the
# whole of a 64 M-pixel image at once made up to five 256 MB copies (RGBA → white composite → RGB).
TILE_PIXELS = 1 << 20


def to_rgb(image: Image.Image, *, source: str, reduce: Reduce | None = None) -> Image.Image:
    """Convert a decoded image to RGB, optionally reducing it first where that is exact.

    Transparency is composited onto white as transformers' `convert_to_rgb` does; 16-bit,
    32-bit integer and float grayscale are scaled to 8 bits (see `_to_8bit`). An RGB image comes
    back as it is (no copy). Besides the image itself, at most one full-size RGB image (4 bytes a
    pixel) is made, and none for RGB or grayscale images when `reduce` is given.

    Args:
        image: The decoded image (loaded, EXIF orientation applied).
        source: Names the image in errors.
        reduce: Applied to the result; a grayscale image is reduced before it is made RGB
            (Pillow resamples every band alike, so this gives the same pixels at a quarter of
            the memory). None: the full-size RGB image.

    Raises:
        ImageError: the mode cannot be converted to RGB.
    """
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = _to_8bit(image)
    # Same rule as transformers.image_transforms.convert_to_rgb, so preprocessing matches it.
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    try:
        if has_alpha:
            image = _on_white(image)
        elif image.mode == "1":
            image = image.convert("L")  # 0 and 255, as "1" → "RGB" gives them, 1 byte a pixel
        if image.mode == "L" and reduce is not None:
            image = reduce(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
    except ValueError as err:
        raise ImageError(
            f"the image has mode {image.mode}, which cannot be converted to RGB: {err}",
            source=source,
        ) from None
    return reduce(image) if reduce is not None else image


def tiles(
    width: int, height: int, pixels: int = TILE_PIXELS
) -> Iterator[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of at most `pixels` pixels covering the image in order.

    Whole rows where a row fits, so most tiles are bands; a single row longer than `pixels` is
    cut into pieces too.
    """
    rows = max(1, pixels // max(1, width))
    columns = min(width, pixels)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        for left in range(0, width, columns):
            yield left, top, min(width, left + columns), bottom


def _on_white(image: Image.Image) -> Image.Image:
    """Composite onto opaque white and drop the alpha, one tile at a time.

    Compositing is per pixel, so tiles give the pixels that the whole image would.
    """
    out = Image.new("RGB", image.size)
    for box in tiles(*image.size):
        # crop() keeps the palette and the `transparency` entry that convert() reads.
        tile = image.crop(box).convert("RGBA")
        white = Image.new("RGBA", tile.size, (255, 255, 255, 255))
        out.paste(Image.alpha_composite(white, tile).convert("RGB"), box)
    return out


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float grayscale to 8-bit L (Pillow would clip at 255).

    Integers are read as 16-bit data (0-65535, what "I" holds from real files), rounded to
    v * 255 / 65535 so that 65535 becomes 255. Floats are read as 0-1 when none exceeds 1,
    else as 0-255. A PNG tRNS gray value becomes an alpha band (mode LA).
    """
    scale = 1.0
    if image.mode == "F":
        peaks = [_finite_max(np.asarray(image.crop(box))) for box in tiles(*image.size)]
        peak = max((p for p in peaks if p is not None), default=None)
        scale = 255.0 if peak is None or peak <= 1.0 else 1.0
    transparency = image.info.get("transparency")
    keep_alpha = image.mode != "F" and isinstance(transparency, int)
    out = Image.new("LA" if keep_alpha else "L", image.size)
    for box in tiles(*image.size):
        values = np.asarray(image.crop(box))
        gray = _gray(values, scale) if image.mode == "F" else _gray16(values)
        if keep_alpha:
            # A PNG tRNS gray value marks fully transparent pixels.
            alpha = np.where(values == transparency, 0, 255).astype(np.uint8)
            gray = np.stack([gray, alpha], axis=-1)
        out.paste(Image.fromarray(gray), box)
    return out


def _finite_max(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else None


def _gray(values: np.ndarray, scale: float) -> np.ndarray:
    levels = np.nan_to_num(values * scale, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)


def _gray16(values: np.ndarray) -> np.ndarray:
    # Integer arithmetic: 4 bytes a pixel of the tile, where float64 would take 8.
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)
