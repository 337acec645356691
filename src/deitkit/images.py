"""Safe image decoding: allow-listed formats, size limits checked from the header, EXIF, RGB."""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from deitkit.env_numbers import env_numbers
from deitkit.errors import ConfigError, ImageError
from deitkit.image_modes import Reduce, to_rgb

SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_ALLOWED = "JPEG, PNG, BMP, GIF, WebP, TIFF"
# EXIF orientations 5-8 turn the stored image by 90 degrees: width and height swap on display.
_TRANSPOSING = {5, 6, 7, 8}
# What shows each EXIF orientation upright (as PIL.ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Opening never waits (a FIFO with no writer) nor makes a terminal ours; Windows has neither
# flag, and needs O_BINARY (its C runtime would otherwise translate line ends).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)
# Worded as deitkit.data.files words them for dataset and batch folders.
_NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


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
    values = env_numbers({field: prefix + suffix for field, suffix in _ENV_NAMES.items()})
    return ImageLimits(**values)


class PixelBudgetError(ImageError):
    """An image whose pixels would take a group of images (a request) over its PixelBudget."""


class PixelBudget:
    """Pixels that a group of images (one request) may decode in all, spent from each header.

    `ImageLimits.max_pixels` caps each image; a budget caps their sum, checked from every
    image's header before its pixels are decoded, so a request of many large images is refused
    before it costs minutes of decoding.

    Args:
        limit: Most pixels in all (width x height from the headers, summed).
        setting: Where the limit comes from, named in the error (an environment variable).
        scope: What the images are, in the error ("request").
    """

    def __init__(self, limit: int, *, setting: str = "", scope: str = "request"):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"PixelBudget limit must be an integer >= 1, got {limit!r}")
        self.limit = limit
        self.setting = setting
        self.scope = scope
        self.spent = 0

    def spend(self, width: int, height: int, source: str) -> None:
        """Count an image of `width` x `height`, or refuse it if the total would pass the limit.

        Raises:
            PixelBudgetError: naming `source`, the total and the limit; nothing is counted.
        """
        total = self.spent + width * height
        if total > self.limit:
            where = f" ({self.setting})" if self.setting else ""
            raise PixelBudgetError(
                f"with this {width}x{height} image the {self.scope}'s images hold {total:,} "
                f"pixels, more than the limit of {self.limit:,} pixels per {self.scope}{where}; "
                f"send fewer or smaller images per {self.scope}",
                source=source,
            )
        self.spent = total


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
    reduce: Reduce | None = None,
    budget: PixelBudget | None = None,
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
        reduce: Applied to the decoded image before it is returned (the preprocessing's
            `EvalTransform.reduce`), so that only this one image is ever held at full size;
            see `deitkit.image_modes.to_rgb`.
        budget: Charged with the header's pixels before any pixel is decoded.

    Raises:
        ImageError: the data is empty, not an allowed format, over or under a limit, truncated
            or corrupt; the message names `source`. PixelBudgetError when over `budget`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image takes bytes, got {type(data).__name__}")
    _check_bytes(len(data), source, limits)
    with _open_checked(io.BytesIO(data), source, limits, budget) as image:
        orientation = _load(image, source, min_size)
    # Leaving the `with` drops the image's reference to its input (and WebP's decoded copy).
    return _finish(image, orientation, source, reduce)


def load_image(
    path: str | Path,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
    reduce: Reduce | None = None,
    budget: PixelBudget | None = None,
) -> Image.Image:
    """Decode an image file into RGB (see `decode_image`); errors name the path.

    Only a regular file is opened (never a FIFO, device or socket), and its size and header
    are checked before its pixel data is read; the data is read as the decoder needs it,
    never the whole file at once.
    """
    source = str(path)
    with (
        _open_file(path, source, limits) as file,
        _open_checked(file, source, limits, budget) as image,
    ):
        orientation = _load(image, source, min_size)
    return _finish(image, orientation, source, reduce)


# data:image/png;base64, (media-type parameters such as ;name=x.png allowed before ;base64).
_DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+(?:;[^;,]*)*;base64,", re.IGNORECASE)
# Both alphabets, plus the line breaks base64.encodebytes inserts; '=' only at the end.
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/\-_\r\n]")
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
    found = _NOT_BASE64.search(digits)  # a regex: a per-character loop costs ~7 ms an image
    if found is not None:
        bad = found.start()
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
    reduce: Reduce | None = None,
    budget: PixelBudget | None = None,
) -> Image.Image:
    """Decode a base64 string (see `decode_base64`) into an RGB image (see `decode_image`)."""
    data = decode_base64(text, source=source)
    return decode_image(
        data, source=source, limits=limits, min_size=min_size, reduce=reduce, budget=budget
    )


def _check_bytes(size: int, source: str, limits: ImageLimits) -> None:
    if size == 0:
        raise ImageError("the file is empty (0 bytes)", source=source)
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise ImageError(
            f"the image is {size:,} bytes, more than the limit of {limits.max_bytes:,} bytes",
            source=source,
        )


def _open_file(path: str | Path, source: str, limits: ImageLimits) -> BinaryIO:
    """Open a regular file for reading, checking its size against `limits` before any read.

    Anything else (a folder, FIFO, device or socket) is refused without reading from it, and
    opening never blocks; OS errors become ImageErrors naming `source`.
    """
    try:
        # stat() first: a socket cannot be opened at all, and a device should not be.
        _check_regular(os.stat(path).st_mode, path, source)
        # Checked again on what was opened, in case the path changed in between.
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        if os.path.islink(path):
            why = "is a broken symlink (its target does not exist)"
            raise ImageError(why, source=source) from None
        raise ImageError("file not found", source=source) from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ImageError("is a symlink loop", source=source) from None
        raise ImageError(f"cannot be read: {err.strerror or err}", source=source) from None
    try:
        status = os.fstat(fd)
        _check_regular(status.st_mode, path, source)
        _check_bytes(status.st_size, source, limits)
        return open(fd, "rb")
    except OSError as err:
        os.close(fd)
        raise ImageError(f"cannot be read: {err.strerror or err}", source=source) from None
    except BaseException:
        os.close(fd)
        raise


def _check_regular(mode: int, path: str | Path, source: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((kind for test, kind in _NOT_REGULAR if test(mode)), "a special file")
    through = "a symlink to " if os.path.islink(path) else ""
    raise ImageError(f"is {through}{kind}, not a regular file", source=source)


def _open_checked(
    file: BinaryIO, source: str, limits: ImageLimits, budget: PixelBudget | None = None
) -> ImageFile.ImageFile:
    """Identify an allow-listed image from its header and check it against `limits`, `budget`."""
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
    if budget is not None:
        try:
            budget.spend(width, height, source)
        except ImageError:
            image.close()
            raise
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


def _load(image: ImageFile.ImageFile, source: str, min_size: tuple[int, int] | None) -> int:
    """Decode the first frame's pixels (drafting JPEGs to `min_size`); its EXIF orientation."""
    try:
        if min_size is not None and image.format in ("JPEG", "MPO"):
            width, height = (max(1, int(side)) for side in min_size)
            if _orientation(image) in _TRANSPOSING:
                width, height = height, width
            image.draft(image.mode, (width, height))
        # LOAD_TRUNCATED_IMAGES stays False: a truncated file raises here instead of decoding.
        image.load()
        # Read after loading: Pillow's TIFF loader turns the image upright itself and drops the tag.
        orientation = _orientation(image)
    except Exception as err:  # Pillow's decoders report corrupt data with many exception types.
        raise ImageError(f"the image data is truncated or corrupt: {err}", source=source) from None
    return orientation


def _finish(
    image: Image.Image, orientation: int, source: str, reduce: Reduce | None
) -> Image.Image:
    """Turn a loaded image upright, then make it RGB and reduce it (see `to_rgb`)."""
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    return to_rgb(image, source=source, reduce=reduce)
