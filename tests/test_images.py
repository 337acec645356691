"""Tests for deitkit.images: formats, limits, bombs, truncation, EXIF, modes, base64."""

from __future__ import annotations

import base64
import io
import os
import re
import socket
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from deitkit import images as images_module
from deitkit.errors import ConfigError, ImageError
from deitkit.images import (
    DEFAULT_LIMITS,
    SUPPORTED_FORMATS,
    ImageInfo,
    ImageLimits,
    PixelBudget,
    PixelBudgetError,
    decode_base64,
    decode_base64_image,
    decode_image,
    limits_from_env,
    load_image,
    read_image_info,
)

ALLOWED_TEXT = "JPEG, PNG, BMP, GIF, WebP, TIFF"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """A smooth RGB image whose corners differ, so rotations and scalings are visible."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1).astype(np.uint8))


def rgb(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """`png` with its IHDR width/height replaced (and the chunk CRC fixed)."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return png[:16] + ihdr + crc + png[33:]


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_every_supported_format_decodes(fmt):
    source = Image.new("RGB", (12, 10), (200, 30, 60))
    data = encode(source, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    image = decode_image(data, source="x")
    assert image.size == (12, 10)
    assert np.abs(rgb(image) - [200, 30, 60]).max() <= 8
    assert read_image_info(data) == ImageInfo(12, 10, fmt, "P" if fmt == "GIF" else "RGB")


@pytest.mark.parametrize(
    ("fmt", "name"), [("ICO", "ICO"), ("PPM", "PPM"), ("PCX", "PCX"), ("TGA", "TGA")]
)
def test_unsupported_formats_are_refused_naming_source_format_and_allowed(tmp_path, fmt, name):
    path = tmp_path / f"pic.{fmt.lower()}"
    Image.new("RGB", (16, 16), "red").save(path, fmt)
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert ALLOWED_TEXT in message
    if name != "TGA":  # TGA has no magic number: Pillow cannot name it either
        assert f"{name} images are not supported" in message


@pytest.mark.parametrize(
    "content",
    [
        b"just some notes\nnot an image\n",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
    ],
)
def test_text_files_are_refused_as_text(tmp_path, content):
    path = tmp_path / "pic.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="the file is text, not an image") as info:
        load_image(path)
    assert info.value.source == str(path)
    assert ALLOWED_TEXT in str(info.value)


@pytest.mark.parametrize(
    "data",
    [np.random.default_rng(0).bytes(300), b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256))],
)
def test_random_and_pdf_bytes_are_refused(data):
    with pytest.raises(ImageError, match="not a supported image") as info:
        decode_image(data, source="upload 3")
    assert str(info.value).startswith("upload 3: ")
    assert ALLOWED_TEXT in str(info.value)


def test_zero_byte_missing_and_directory_are_refused_naming_the_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: the file is empty \(0 bytes\)"):
        load_image(empty)
    with pytest.raises(ImageError, match=r"missing\.jpg: file not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder, not a regular file"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match=r"missing\.png: file not found"):
        read_image_info(tmp_path / "missing.png")
    with pytest.raises(ImageError, match=r"^image: the file is empty"):
        decode_image(b"")


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "p.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"p\.png: is a FIFO, not a regular file$"):
        load_image(fifo)
    with pytest.raises(ImageError, match="is a FIFO, not a regular file"):
        read_image_info(fifo)


@pytest.mark.timeout(20)
def test_devices_sockets_and_dangling_links_are_refused_without_reading(tmp_path):
    with pytest.raises(ImageError, match=r"^/dev/zero: is a character device, not a regular file"):
        load_image("/dev/zero")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.png"))
        with pytest.raises(ImageError, match=r"s\.png: is a socket, not a regular file"):
            load_image(tmp_path / "s.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(ImageError, match=r"gone\.png: is a broken symlink \(its target does not"):
        load_image(tmp_path / "gone.png")
    (tmp_path / "link.png").symlink_to("/dev/zero")  # a link is judged by what it points to
    with pytest.raises(ImageError, match="is a symlink to a character device, not a regular"):
        load_image(tmp_path / "link.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    with pytest.raises(ImageError, match=r"loop\.png: is a symlink loop$"):
        load_image(tmp_path / "loop.png")


class _Reads:
    """Wraps deitkit.images._open_file to record how far into each file anything was read."""

    def __init__(self, monkeypatch):
        self.furthest: list[int] = []
        opener = images_module._open_file

        def open_file(*args):
            file = opener(*args)
            index = len(self.furthest)
            self.furthest.append(0)
            read = file.read

            def tracked(*size):
                data = read(*size)
                self.furthest[index] = max(self.furthest[index], file.tell())
                return data

            file.read = tracked
            return file

        monkeypatch.setattr(images_module, "_open_file", open_file)


def test_a_huge_sparse_file_is_refused_from_its_header_not_read_whole(tmp_path, monkeypatch):
    huge = tmp_path / "huge.mp4"
    with open(huge, "wb") as file:
        file.write(b"\0\0\0\x18ftypmp42")  # an MP4's first box
        os.truncate(file.fileno(), 3 * 1024**3)  # 3 GB, sparse: no disk used
    reads = _Reads(monkeypatch)

    with pytest.raises(ImageError, match=r"huge\.mp4: not a supported image"):
        load_image(huge)
    with pytest.raises(ImageError, match=r"is 3,221,225,472 bytes, more than the limit"):
        load_image(huge, limits=ImageLimits(max_bytes=10_000_000))

    assert reads.furthest[0] < 1024 * 1024  # the header and a sniff, never the 3 GB
    assert len(reads.furthest) == 1  # the byte cap refused the second before any read


def test_a_file_is_decoded_as_read_and_trailing_data_is_never_read(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    png = encode(gradient(30, 20), "PNG")
    with open(path, "wb") as file:
        file.write(png)
        os.truncate(file.fileno(), 1024**3)  # 1 GB of (sparse) zeros after the image
    reads = _Reads(monkeypatch)

    assert rgb(load_image(path)).tolist() == rgb(decode_image(png)).tolist()
    assert reads.furthest[0] < 1024 * 1024
    with pytest.raises(ImageError, match=r"30x20 \(600 pixels\), more than the limit of 500"):
        load_image(path, limits=ImageLimits(max_pixels=500))


# --- reduce and the pixel budget -----------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        gradient(60, 40),
        gradient(60, 40).convert("L"),
        gradient(60, 40).convert("RGBA"),
        gradient(60, 40).convert("P"),
    ],
    ids=["RGB", "L", "RGBA", "P"],
)
def test_decoding_with_reduce_equals_reducing_the_decoded_image(source):
    from deitkit.transforms import EvalTransform

    data = encode(source, "PNG")
    reduce = EvalTransform.for_image_size(16).reduce

    reduced = decode_image(data, reduce=reduce)

    assert reduced.mode == "RGB" and reduced.size == (18, 18)
    assert rgb(reduced).tolist() == rgb(reduce(decode_image(data))).tolist()


def test_exif_orientation_is_applied_before_reducing():
    data = encode(halves(64, 32), "PNG", exif=exif_with_orientation(6))
    image = decode_image(
        data, reduce=lambda image: image.resize((image.width // 4, image.height // 4))
    )
    assert image.size == (8, 16)  # upright (32x64), then reduced


def test_pixel_budget_counts_headers_and_refuses_the_image_that_passes_it():
    budget = PixelBudget(1000, setting="DEITKIT_MAX_REQUEST_PIXELS")
    budget.spend(20, 20, "image 0")
    budget.spend(30, 20, "image 1")
    with pytest.raises(PixelBudgetError) as raised:
        budget.spend(1, 2, "image 2")
    assert str(raised.value) == (
        "image 2: with this 1x2 image the request's images hold 1,002 pixels, more than the "
        "limit of 1,000 pixels per request (DEITKIT_MAX_REQUEST_PIXELS); send fewer or smaller "
        "images per request"
    )
    assert isinstance(raised.value, ImageError) and budget.spent == 1000  # nothing counted
    with pytest.raises(ConfigError, match="limit must be an integer >= 1, got 0"):
        PixelBudget(0)


def test_pixel_budget_is_checked_from_the_header_before_decoding(tmp_path):
    budget = PixelBudget(10_000)
    decode_image(encode(Image.new("RGB", (80, 100)), "PNG"), budget=budget)
    # 8x8 pixel data under a 50x50 header: decoding would fail as truncated; the budget is first.
    header_only = with_png_size(encode(Image.new("RGB", (8, 8)), "PNG"), 50, 50)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(header_only)
    with pytest.raises(PixelBudgetError, match=r"^image: with this 50x50 image .* 10,500 pixels"):
        decode_image(header_only, budget=budget)
    path = tmp_path / "big.png"
    path.write_bytes(header_only)
    with pytest.raises(PixelBudgetError, match=r"big\.png: with this 50x50 image"):
        load_image(path, budget=budget)
    assert budget.spent == 8_000


# --- limits --------------------------------------------------------------------------------------


def test_header_bomb_is_refused_fast_by_pillow_limit():
    png = with_png_size(encode(Image.new("RGB", (8, 8)), "PNG"), 30000, 30000)
    assert len(png) < 200
    start = time.perf_counter()
    with pytest.raises(ImageError, match="more than the limit of") as info:
        decode_image(png, source="bomb.png")
    assert time.perf_counter() - start < 0.5
    assert info.value.source == "bomb.png"
    with pytest.raises(ImageError, match="more than the limit of"):
        read_image_info(png)


def test_header_bomb_under_pillow_limit_is_refused_by_ours():
    # 8500x8500 = 72 M pixels: under Pillow's 89 M warning level, over our 64 M default.
    png = with_png_size(encode(Image.new("L", (8, 8)), "PNG"), 8500, 8500)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"8500x8500 \(72,250,000 pixels\), more than the limit"):
        decode_image(png)
    assert time.perf_counter() - start < 0.5


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_header_bomb_in_pillow_warning_range_is_refused():
    # 12000x12000 = 144 M pixels: Pillow only warns (89 M to 179 M); it must still be refused.
    png = with_png_size(encode(Image.new("RGB", (8, 8)), "PNG"), 12000, 12000)
    with pytest.raises(ImageError, match=r"12000x12000 \(144,000,000 pixels\), more than the"):
        decode_image(png, limits=ImageLimits(max_pixels=500_000_000))


def test_read_image_info_of_a_file_reads_only_the_header(tmp_path):
    path = tmp_path / "photo.jpg"
    data = encode(gradient(30, 20), "JPEG")
    path.write_bytes(data[: data.index(b"\xff\xda") + 20])  # cut after the start of scan
    assert read_image_info(path) == ImageInfo(30, 20, "JPEG", "RGB")
    assert read_image_info(str(path), name="upload") == ImageInfo(30, 20, "JPEG", "RGB")
    with pytest.raises(ImageError, match=r"^upload: the image is 30x20 pixels; each side"):
        read_image_info(path, name="upload", limits=ImageLimits(min_side=25))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(path)


def test_pixel_cap_and_byte_cap_from_limits(tmp_path):
    data = encode(Image.new("RGB", (40, 30)), "PNG")
    with pytest.raises(ImageError, match=r"40x30 \(1,200 pixels\), more than the limit of 1,000"):
        decode_image(data, limits=ImageLimits(max_pixels=1000))
    assert decode_image(data, limits=ImageLimits(max_pixels=1200)).size == (40, 30)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=f"is {len(data)} bytes, more than the limit of 50 bytes"):
        load_image(path, limits=ImageLimits(max_bytes=50))
    with pytest.raises(ImageError, match="more than the limit of 50 bytes"):
        decode_image(data, limits=ImageLimits(max_bytes=50))


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1)])
def test_too_small_images_are_refused_with_size_and_minimum(size):
    data = encode(Image.new("RGB", size), "PNG")
    width, height = size
    expected = f"the image is {width}x{height} pixels; each side must be at least 2 pixels"
    with pytest.raises(ImageError, match=expected):
        decode_image(data)
    with pytest.raises(ImageError, match=expected):
        read_image_info(data)


def test_smallest_allowed_image_decodes():
    assert decode_image(encode(Image.new("RGB", (2, 2)), "PNG")).size == (2, 2)
    with pytest.raises(ImageError, match="at least 4 pixels"):
        decode_image(encode(Image.new("RGB", (3, 9)), "PNG"), limits=ImageLimits(min_side=4))


def test_limits_validate_and_read_environment(monkeypatch):
    assert ImageLimits(max_pixels=64_000_000, min_side=2, max_bytes=None) == DEFAULT_LIMITS
    with pytest.raises(ConfigError, match="min_side must be an integer >= 1, got 0"):
        ImageLimits(min_side=0)
    monkeypatch.setenv("DEITKIT_MAX_IMAGE_PIXELS", "1_000_000")
    monkeypatch.setenv("DEITKIT_MIN_IMAGE_SIDE", " 16 ")
    monkeypatch.setenv("DEITKIT_MAX_IMAGE_BYTES", "")
    assert limits_from_env() == ImageLimits(max_pixels=1_000_000, min_side=16, max_bytes=None)
    monkeypatch.setenv("X_MAX_IMAGE_BYTES", "2048")
    assert limits_from_env("X_") == ImageLimits(max_bytes=2048)
    for bad in ("many", "0", "-3", "1.5"):
        monkeypatch.setenv("DEITKIT_MIN_IMAGE_SIDE", bad)
        with pytest.raises(ConfigError, match=f"DEITKIT_MIN_IMAGE_SIDE='{bad}' is invalid"):
            limits_from_env()


# --- truncated and corrupt data ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_truncated_images_are_refused(fmt):
    noise = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(ImageError) as info:
        decode_image(data[: len(data) // 2], source="cut")
    assert info.value.source == "cut"


def test_jpeg_cut_just_before_its_end_is_refused():
    data = encode(gradient(64, 48), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(data[:-200])


def test_corrupt_png_data_is_refused():
    data = bytearray(encode(gradient(32, 32), "PNG"))
    start = data.index(b"IDAT") + 20
    data[start : start + 40] = bytes(40)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(bytes(data))


# --- orientation, frames, draft ------------------------------------------------------------------


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def test_exif_orientation_6_rotates_clockwise():
    data = encode(halves(64, 32), "JPEG", exif=exif_with_orientation(6), quality=95)
    assert read_image_info(data) == ImageInfo(32, 64, "JPEG", "RGB")
    pixels = rgb(decode_image(data))
    assert pixels.shape == (64, 32, 3)
    # Turned a quarter clockwise: the left (red) half is now on top.
    assert np.abs(pixels[8, 16] - [255, 0, 0]).max() < 12
    assert np.abs(pixels[56, 16] - [0, 0, 255]).max() < 12


def test_exif_orientation_in_tiff_tags_is_applied():
    data = encode(halves(20, 10), "TIFF", exif=exif_with_orientation(3))
    pixels = rgb(decode_image(data))
    assert pixels.shape == (10, 20, 3)
    assert pixels[5, 2].tolist() == [0, 0, 255]  # rotated 180: blue now on the left


def test_animated_gif_and_webp_give_the_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "lime", "blue")]
    for fmt in ("GIF", "WEBP"):
        options = {"lossless": True} if fmt == "WEBP" else {}
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **options)
        with Image.open(io.BytesIO(data)) as check:
            assert check.n_frames == 3
        assert rgb(decode_image(data))[4, 4].tolist() == [255, 0, 0]


def test_multi_picture_jpeg_is_accepted_as_jpeg():
    data = encode(halves(16, 16), "MPO", save_all=True, append_images=[Image.new("RGB", (16, 16))])
    assert read_image_info(data).format == "JPEG"
    assert rgb(decode_image(data))[8, 2, 0] > 200


def test_draft_hint_decodes_jpeg_smaller_but_never_below_the_request():
    data = encode(gradient(800, 600), "JPEG", quality=95)
    full = decode_image(data)
    small = decode_image(data, min_size=(150, 100))
    assert full.size == (800, 600)
    assert small.size == (200, 150)  # 1/4 scale: 1/8 would be 100x75, too small
    reference = rgb(full.resize(small.size, Image.Resampling.BOX))
    assert np.abs(rgb(small) - reference).mean() < 3
    assert decode_image(data, min_size=(799, 10)).size == (800, 600)
    png = encode(gradient(80, 60), "PNG")
    assert decode_image(png, min_size=(10, 10)).size == (80, 60)  # only JPEG drafts


def test_draft_hint_accounts_for_exif_rotation():
    data = encode(gradient(800, 400), "JPEG", exif=exif_with_orientation(6))
    # Displayed 400x800. Needing a 300-wide result rules out halving the displayed width.
    image = decode_image(data, min_size=(300, 100))
    assert image.size == (400, 800)
    image = decode_image(data, min_size=(100, 300))
    assert image.size == (200, 400)


# --- modes ---------------------------------------------------------------------------------------


def test_grayscale_and_bilevel_modes():
    gray = decode_image(encode(Image.new("L", (4, 4), 100), "PNG"))
    assert rgb(gray)[0, 0].tolist() == [100, 100, 100]
    bits = Image.new("1", (4, 4), 0)
    bits.putpixel((1, 0), 1)
    pixels = rgb(decode_image(encode(bits, "PNG")))
    assert pixels[0, :2].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 128, 129, 257, 32896, 65406, 65535]] * 2, dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert read_image_info(data).mode == "I;16"
    pixels = rgb(decode_image(data))
    assert pixels[0, :, 0].tolist() == [0, 0, 1, 1, 128, 254, 255]
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_sixteen_bit_png_transparency_becomes_white():
    values = np.array([[0, 1000], [1000, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG", transparency=1000)
    pixels = rgb(decode_image(data))
    assert pixels[:, :, 0].tolist() == [[0, 255], [255, 255]]


def test_32_bit_integer_and_float_tiffs():
    ints = np.array([[-5, 0, 32896, 65535, 100000]] * 2, dtype=np.int32)
    image = decode_image(encode(Image.fromarray(ints), "TIFF"))
    assert rgb(image)[0, :, 1].tolist() == [0, 0, 128, 255, 255]
    # Floats within 0-1 are scaled to 0-255 (NaN becomes 0); wider floats are clipped to 0-255.
    unit = np.array([[0.0, 0.5, 1.0, np.nan]] * 2, dtype=np.float32)
    unit_pixels = rgb(decode_image(encode(Image.fromarray(unit), "TIFF")))
    assert unit_pixels[0, :, 0].tolist() == [0, 128, 255, 0]
    wide = np.array([[0.0, 0.5, 100.0, 300.0]] * 2, dtype=np.float32)
    wide_pixels = rgb(decode_image(encode(Image.fromarray(wide), "TIFF")))
    assert wide_pixels[0, :, 0].tolist() == [0, 0, 100, 255]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_converts_to_rgb(fmt):
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), fmt)
    assert read_image_info(data).mode == "CMYK"
    assert np.abs(rgb(decode_image(data))[8, 8] - [255, 0, 0]).max() < 8


def transparent_images() -> dict[str, Image.Image]:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[..., 3] = [[0, 64, 128, 255]] * 4
    la = np.stack([np.full((4, 4), 90, np.uint8), rgba[..., 3]], axis=-1)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30, 250, 0, 0])
    palette.putpixel((1, 1), 1)
    palette.info["transparency"] = 1
    return {"RGBA": Image.fromarray(rgba), "LA": Image.fromarray(la), "P": palette}


@pytest.mark.parametrize(
    ("mode", "fmt"), [("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "WEBP"), ("P", "GIF")]
)
def test_transparency_matches_transformers_convert_to_rgb(mode, fmt):
    from transformers.image_transforms import convert_to_rgb

    source = transparent_images()[mode]
    options = {"lossless": True} if fmt == "WEBP" else {}
    if mode == "P":
        options["transparency"] = 1
    data = encode(source, fmt, **options)
    with Image.open(io.BytesIO(data)) as reference:
        expected = convert_to_rgb(reference, return_numpy=True)
    pixels = rgb(decode_image(data))
    assert (pixels == expected).all()
    if mode == "RGBA":
        assert pixels[0, 0].tolist() == [255, 255, 255]  # fully transparent → white
        assert pixels[0, 3].tolist() == [200, 40, 10]
    if mode == "P":
        assert pixels[1, 1].tolist() == [255, 255, 255]
        assert pixels[0, 0].tolist() == [10, 20, 30]


# --- base64 --------------------------------------------------------------------------------------


def base64_variants(data: bytes) -> dict[str, str]:
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    assert standard.endswith("=") and ("+" in standard or "/" in standard)
    return {
        "standard": standard,
        "urlsafe": urlsafe,
        "no padding": standard.rstrip("="),
        "urlsafe no padding": urlsafe.rstrip("="),
        "encodebytes": base64.encodebytes(data).decode(),
        "crlf": base64.encodebytes(data).decode().replace("\n", "\r\n"),
        "data url": "data:image/png;base64," + standard,
        "data url params": "DATA:image/svg+xml;name=a.png;base64," + urlsafe.rstrip("="),
        "surrounding spaces": f"  {standard}\n",
    }


def padded_png() -> bytes:
    """A PNG whose length is not a multiple of 3 (so base64 pads) and whose base64 has + or /."""
    for seed in range(100):
        noise = np.random.default_rng(seed).integers(0, 256, (6, 5, 3), dtype=np.uint8)
        data = encode(Image.fromarray(noise), "PNG")
        text = base64.b64encode(data).decode()
        if len(data) % 3 and ("+" in text or "/" in text):
            return data
    raise AssertionError("no suitable PNG")


def test_base64_variants_decode_identically():
    data = padded_png()
    expected = rgb(decode_image(data))
    for name, text in base64_variants(data).items():
        assert decode_base64(text) == data, name
        assert (rgb(decode_base64_image(text, source=name)) == expected).all(), name


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello world!", "character ' ' at position 5"),
        ("aGVsbG8$d29ybGQ=", r"character '\$' at position 7"),
        ("aGVs bG8=", "character ' ' at position 4"),
        ("aGVsbG8=aGVs", r"character '=' at position 7"),
        ("aGVsbG8h\tZm9v", r"character '\\t' at position 8"),
        ("aGVsb", "5 characters"),
        ("aGVsbG8====", r"plus 4 '='"),
        ("ab-c+d==", "mixes the standard"),
        ("aGVsbG8hé", "character 'é' at position 8"),
        ("aGVsbG8h\nZm9v\n!", "character '!' at position 14"),
        ("data:image/png;base64,aGVs%bG8=", "character '%' at position 26"),
    ],
)
def test_invalid_base64_is_refused_with_the_reason(text, reason):
    with pytest.raises(ImageError, match="is not valid base64") as info:
        decode_base64(text, source="image 4")
    assert info.value.source == "image 4"
    assert re.search(reason, str(info.value)), str(info.value)


def test_empty_and_bad_data_urls_are_refused():
    with pytest.raises(ImageError, match="the text is empty"):
        decode_base64("  \n")
    with pytest.raises(ImageError, match="the text is empty"):
        decode_base64("data:image/png;base64,")
    with pytest.raises(ImageError, match="is not of the form data:image/<type>;base64"):
        decode_base64("data:text/plain;base64,aGVsbG8=")
    with pytest.raises(ImageError, match="is not of the form"):
        decode_base64("data:image/png,rawbytes")


def test_base64_of_non_image_bytes_is_refused():
    text = base64.b64encode(b"this decodes fine but is no image").decode()
    with pytest.raises(ImageError, match="the file is text, not an image") as info:
        decode_base64_image(text, source="image 0")
    assert str(info.value).startswith("image 0: ")
    with pytest.raises(ImageError, match="ICO images are not supported"):
        decode_base64_image(base64.b64encode(encode(Image.new("RGB", (8, 8)), "ICO")).decode())
