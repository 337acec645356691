"""deitkit.image_modes: tile-by-tile conversion to RGB gives the whole-image pixels, few copies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deitkit import image_modes
from deitkit.errors import ImageError
from deitkit.image_modes import tiles, to_rgb


def _whole_image_rgb(image: Image.Image) -> np.ndarray:
    """transformers' convert_to_rgb rule, on the whole image at once."""
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def _transparent(mode: str, size=(37, 23)) -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    rgba = Image.fromarray(pixels, "RGBA")
    if mode == "P":
        palette = rgba.convert("RGB").quantize(16)
        palette.info["transparency"] = 3
        return palette
    if mode == "RGB":
        rgb = rgba.convert("RGB")
        rgb.info["transparency"] = tuple(pixels[0, 0, :3].tolist())
        return rgb
    return rgba.convert(mode)


@pytest.mark.parametrize(("width", "height", "pixels"), [(10, 7, 20), (50, 3, 20), (4, 4, 100)])
def test_tiles_cover_the_image_once_in_boxes_of_at_most_the_pixels(width, height, pixels):
    covered = np.zeros((height, width), dtype=int)
    for left, top, right, bottom in tiles(width, height, pixels):
        assert 0 < (right - left) * (bottom - top) <= pixels
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "P", "RGB"])
def test_transparency_tile_by_tile_equals_the_whole_image(mode, monkeypatch):
    image = _transparent(mode)
    monkeypatch.setattr(image_modes, "TILE_PIXELS", 50)  # many tiles, rows cut in pieces

    assert np.array_equal(np.asarray(to_rgb(image, source="x")), _whole_image_rgb(image))


def test_sixteen_bit_and_float_tile_by_tile_equal_one_tile(monkeypatch):
    ramp = np.linspace(0, 65535, 31 * 17).reshape(17, 31).astype(np.uint16)
    sixteen = Image.fromarray(ramp)
    sixteen.info["transparency"] = int(ramp[3, 3])
    floats = Image.fromarray((ramp / 65535).astype(np.float32))
    floats.putpixel((30, 16), 1.5)  # one value over 1 anywhere: read as 0-255 everywhere
    whole = [np.asarray(to_rgb(image, source="x")) for image in (sixteen, floats)]

    monkeypatch.setattr(image_modes, "TILE_PIXELS", 40)

    for image, expected in zip((sixteen, floats), whole, strict=True):
        assert np.array_equal(np.asarray(to_rgb(image, source="x")), expected)
    assert whole[0][3, 3].tolist() == [255, 255, 255]  # the tRNS gray value became white
    assert whole[1][16, 30, 0] == 2 and whole[1][0, 1, 0] == 0


def test_an_rgb_image_comes_back_as_it_is():
    image = Image.new("RGB", (8, 6), (1, 2, 3))
    assert to_rgb(image, source="x") is image


def test_grayscale_is_reduced_before_it_is_made_rgb():
    seen: list[tuple[str, tuple[int, int]]] = []

    def reduce(image: Image.Image) -> Image.Image:
        seen.append((image.mode, image.size))
        return image if image.size == (4, 4) else image.resize((4, 4))

    for mode in ("L", "1", "I;16"):
        seen.clear()
        result = to_rgb(Image.new(mode, (40, 30)), source="x", reduce=reduce)
        assert result.mode == "RGB" and result.size == (4, 4)
        assert seen[0] == ("L", (40, 30)), mode  # 1 byte a pixel, not 4

    seen.clear()
    to_rgb(Image.new("P", (40, 30)), source="x", reduce=reduce)
    assert seen == [("RGB", (40, 30))]  # a palette cannot be resampled: made RGB first


def test_a_mode_without_an_rgb_conversion_is_an_image_error():
    with pytest.raises(ImageError, match=r"^upload: the image has mode La, which cannot be"):
        to_rgb(Image.new("La", (4, 4)), source="upload")
