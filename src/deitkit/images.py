"""Safe image decoding: allow-listed formats, size limits checked from the header, EXIF, RGB."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from deitkit.errors import ConfigError, ImageError

SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_ALLOWED = "JPEG, PNG, BMP, GIF, WebP, TIFF"
# EXIF orientations 5-8 turn the stored image by 90 degrees: width and height swap on display.
_TRANSPOSING = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageLimits:
    """What an image must satisfy before its pixels are decoded.

    Attributes:
        max_pixels: Most pixels (width x height, from the header). 64 M covers 48-50 MP phone
            cameras (8160x6144) and keeps one decoded RGB image under 200 MB. Pillow's own
            `Image.MAX_IMAGE_PIXELS` (89 M by default) applies as well: the lower cap wins.
        min_side: Fewest pixels on either side. 2 refuses 1-pixel images (tracking pixels,
            spacers, broken thumbnails) that carry no 2-D content, and accepts every real dataset
            (scikit-learn's digits are 8x8).
        max_bytes: Largest encoded size in bytes; None: no cap beyond the pixel cap.
    """

    max_pixels: int = 64_000_000
    min_side: int = 2
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_pixels", "min_side", "max_bytes"):
            value = getattr(self, name)
            if name == "max_bytes" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ImageLimits.{name} must be an integer >= 1, got {value!r}")


DEFAULT_LIMITS = ImageLimits()
_ENV_NAMES = {
    "max_pixels": "MAX_IMAGE_PIXELS",
    "min_side": "MIN_IMAGE_SIDE",
    "max_bytes": "MAX_IMAGE_BYTES",
}


def limits_from_env(prefix: str = "DEITKIT_") -> ImageLimits:
    """Image limits from `{prefix}MAX_IMAGE_PIXELS`, `MIN_IMAGE_SIDE` and `MAX_IMAGE_BYTES`.

    Unset or empty variables keep the defaults of `ImageLimits`.

    Raises:
        ConfigError: a variable is not an integer >= 1, naming the variable and its value.
    """
    values: dict[str, int] = {}
    for field, suffix in _ENV_NAMES.items():
        name = prefix + suffix
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{name}={raw!r} is invalid: expected an integer >= 1")
        values[field] = value
    return ImageLimits(**values)


@dataclass(frozen=True)
class ImageInfo:
    """What an image header says: size as displayed (EXIF orientation applied), format, mode."""

    width: int
    height: int
    format: str
    mode: str


def read_image_info(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageInfo:
    """Read an image's header (a file path, or the encoded bytes) and check it against `limits`.

    No pixel data is decoded, so this is cheap even for large files.

    Raises:
        ImageError: the file is missing or empty, the format is not allowed, or a limit is broken.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "image"
        _check_bytes(len(source), label, limits)
        with _open_checked(io.BytesIO(source), label, limits) as image:
            return _info(image, label)
    label = name or str(source)
    with _open_file(source, label, limits) as file, _open_checked(file, label, limits) as image:
        return _info(image, label)


def decode_image(
    data: bytes,
    *,
    source: str = "image",
    limits: ImageLimits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode encoded image bytes into an RGB image with its EXIF orientation applied.

    Args:
        data: The encoded image (a whole file).
        source: Names the image in error messages (a path, "image 3", ...).
        limits: Checked from the header before any pixel is decoded.
        min_size: Optional (width, height) the caller needs no more than, as displayed (the
            preprocessing's `EvalTransform.min_size`). JPEGs are then decoded at a reduced
            scale (libjpeg's DCT scaling) that is still at least this large, which is several
            times faster for big photos; other formats ignore it.

    Raises:
        ImageError: the data is empty, not an allowed format, over or under a limit, truncated
            or corrupt; the message names `source`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image takes bytes, got {type(data).__name__}")
    _check_bytes(len(data), source, limits)
    with _open_checked(io.BytesIO(data), source, limits) as image:
        return _decode(image, source, min_size)


def load_image(
    path: str | Path,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Read and decode an image file into RGB (see `decode_image`); errors name the path."""
    source = str(path)
    with _open_file(path, source, limits) as file:
        data = file.read()
    return decode_image(data, source=source, limits=limits, min_size=min_size)


# data:image/png;base64, (media-type parameters such as ;name=x.png allowed before ;base64).
_DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+(?:;[^;,]*)*;base64,", re.IGNORECASE)
# Both alphabets, plus the line breaks base64.encodebytes inserts; '=' only at the end.
_BASE64_CHARS = frozenset(string.ascii_letters + string.digits + "+/-_\r\n")
_BASE64_HELP = (
    "expected the standard or URL-safe alphabet, optional '=' padding, line breaks, "
    "and an optional data:image/...;base64, prefix"
)


def decode_base64(text: str, *, source: str = "image") -> bytes:
    """Decode base64 text as DESIGN.md allows it: either alphabet, padding optional, line breaks.

    An optional `data:image/<type>;base64,` prefix is removed. Any other character is an error.

    Raises:
        ImageError: the text is empty or not valid base64, saying where it goes wrong.
    """
    if not isinstance(text, str):
        raise TypeError(f"decode_base64 takes a str, got {type(text).__name__}")
    start = len(text) - len(text.lstrip())
    body = text.strip()
    if body[:5].lower() == "data:":
        match = _DATA_URL.match(body)
        if match is None:
            raise ImageError(
                f"the data: URL {body[:40]!r} is not of the form data:image/<type>;base64,<data>",
                source=source,
            )
        start += match.end()
        body = body[match.end() :]
    digits = body.rstrip("=")
    # Positions in errors count from the start of `text`, line breaks included.
    bad = next((i for i, c in enumerate(digits) if c not in _BASE64_CHARS), None)
    if bad is not None:
        raise ImageError(
            f"the text is not valid base64: character {digits[bad]!r} at position {start + bad}; "
            f"{_BASE64_HELP}",
            source=source,
        )
    # base64.encodebytes breaks lines every 76 characters; \r\n comes from Windows tools.
    digits = digits.replace("\r", "").replace("\n", "")
    padding = len(body) - len(body.rstrip("="))
    if not digits:
        raise ImageError("the text is empty; expected base64-encoded image bytes", source=source)
    if padding > 2 or len(digits) % 4 == 1:
        raise ImageError(
            f"the text is not valid base64: {len(digits)} characters (plus {padding} '=') "
            f"cannot encode whole bytes; {_BASE64_HELP}",
            source=source,
        )
    urlsafe = "-" in digits or "_" in digits
    if urlsafe and ("+" in digits or "/" in digits):
        raise ImageError(
            "the text is not valid base64: it mixes the standard (+/) and URL-safe (-_) alphabets",
            source=source,
        )
    if urlsafe:
        digits = digits.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(digits + "=" * (-len(digits) % 4), validate=True)
    except binascii.Error as err:  # not expected after the checks above; still the user's input
        raise ImageError(f"the text is not valid base64: {err}", source=source) from None


def decode_base64_image(
    text: str,
    *,
    source: str = "image",
    limits: ImageLimits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode a base64 string (see `decode_base64`) into an RGB image (see `decode_image`)."""
    data = decode_base64(text, source=source)
    return decode_image(data, source=source, limits=limits, min_size=min_size)


def _check_bytes(size: int, source: str, limits: ImageLimits) -> None:
    if size == 0:
        raise ImageError("the file is empty (0 bytes)", source=source)
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise ImageError(
            f"the image is {size:,} bytes, more than the limit of {limits.max_bytes:,} bytes",
            source=source,
        )


def _open_file(path: str | Path, source: str, limits: ImageLimits) -> BinaryIO:
    """Open `path` for reading, with OS errors and size limits reported as ImageError."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - returned to the caller's `with`
        size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise ImageError("file not found", source=source) from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image file", source=source) from None
    except OSError as err:
        raise ImageError(f"cannot be read: {err.strerror or err}", source=source) from None
    try:
        _check_bytes(size, source, limits)
    except ImageError:
        file.close()
        raise
    return file


def _open_checked(file: BinaryIO, source: str, limits: ImageLimits) -> ImageFile.ImageFile:
    """Identify an allow-listed image from its header and check it against `limits`."""
    cap = limits.max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        cap = min(cap, Image.MAX_IMAGE_PIXELS)
    try:
        image = Image.open(file, formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as err:
        # Pillow refuses more than 2 x MAX_IMAGE_PIXELS itself, before we see the size.
        raise ImageError(
            f"the image has more than the limit of {cap:,} pixels ({err})", source=source
        ) from None
    except UnidentifiedImageError:
        raise ImageError(_unidentified(file), source=source) from None
    except Exception as err:  # Pillow reports malformed headers with many exception types.
        raise ImageError(f"the image header is corrupt: {err}", source=source) from None
    width, height = image.size
    problem = None
    if width * height > cap:
        problem = (
            f"the image is {width}x{height} ({width * height:,} pixels), more than the limit "
            f"of {cap:,} pixels"
        )
    elif min(width, height) < limits.min_side:
        problem = (
            f"the image is {width}x{height} pixels; each side must be at least "
            f"{limits.min_side} pixels"
        )
    if problem is not None:
        image.close()
        raise ImageError(problem, source=source)
    return image


def _unidentified(file: BinaryIO) -> str:
    """Why an unidentified image was refused, naming its real format when Pillow knows it."""
    try:
        # Header parsing only (no pixel data), to name the format in the message.
        with Image.open(file) as other:
            found = other.format
    except Exception:
        found = None
    if found:
        return f"{found} images are not supported; supported formats: {_ALLOWED}"
    file.seek(0)
    head = file.read(512)
    if b"\0" not in head and head.decode("utf-8", "replace").count("\ufffd") <= 1:
        return f"the file is text, not an image; supported formats: {_ALLOWED}"
    return f"not a supported image (corrupt or another format); supported formats: {_ALLOWED}"


def _orientation(image: Image.Image) -> int:
    return int(image.getexif().get(ExifTags.Base.Orientation, 1) or 1)


def _info(image: ImageFile.ImageFile, source: str) -> ImageInfo:
    try:
        orientation = _orientation(image)
    except Exception as err:  # malformed EXIF raises several exception types
        raise ImageError(f"the EXIF data is corrupt: {err}", source=source) from None
    width, height = image.size
    if orientation in _TRANSPOSING:
        width, height = height, width
    # Pillow names a JPEG that carries extra pictures (as many phone cameras write) "MPO"; its
    # first picture, the one decoded, is an ordinary JPEG.
    fmt = "JPEG" if image.format == "MPO" else str(image.format)
    return ImageInfo(width=width, height=height, format=fmt, mode=image.mode)


def _decode(
    image: ImageFile.ImageFile, source: str, min_size: tuple[int, int] | None
) -> Image.Image:
    """Decode the first frame of an opened image: draft, load, EXIF transpose, RGB."""
    try:
        if min_size is not None and image.format in ("JPEG", "MPO"):
            width, height = (max(1, int(side)) for side in min_size)
            if _orientation(image) in _TRANSPOSING:
                width, height = height, width
            image.draft(image.mode, (width, height))
        # LOAD_TRUNCATED_IMAGES stays False: a truncated file raises here instead of decoding.
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as err:  # Pillow's decoders report corrupt data with many exception types.
        raise ImageError(f"the image data is truncated or corrupt: {err}", source=source) from None
    return _to_rgb(image, source)


def _to_rgb(image: Image.Image, source: str) -> Image.Image:
    """Convert any mode to RGB; transparency is composited onto white as transformers does."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = _to_8bit(image)
    # Same rule as transformers.image_transforms.convert_to_rgb, so preprocessing matches it.
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    try:
        if not has_alpha:
            return image.convert("RGB")
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    except ValueError as err:
        raise ImageError(
            f"the image has mode {image.mode}, which cannot be converted to RGB: {err}",
            source=source,
        ) from None


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float grayscale to 8-bit L (Pillow would clip at 255).

    Integers are read as 16-bit data (0-65535, what "I" holds from real files), rounded to
    v * 255 / 65535 so that 65535 becomes 255. Floats are read as 0-1 when none exceeds 1,
    else as 0-255.
    """
    values = np.asarray(image)
    if image.mode == "F":
        finite = values[np.isfinite(values)]
        scale = 255.0 if finite.size == 0 or finite.max() <= 1.0 else 1.0
        levels = np.nan_to_num(values * scale, nan=0.0, posinf=255.0, neginf=0.0)
        gray = np.clip(np.rint(levels), 0, 255).astype(np.uint8)
    else:
        # Integer arithmetic: 4 bytes a pixel, where float64 would take 8 on a 64 M-pixel image.
        wide = np.clip(values, 0, 65535).astype(np.uint32)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    transparency = image.info.get("transparency")
    if image.mode != "F" and isinstance(transparency, int):
        # A PNG tRNS gray value marks fully transparent pixels; keep it as an alpha band.
        alpha = np.where(values == transparency, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([gray, alpha], axis=-1))
    return Image.fromarray(gray)
