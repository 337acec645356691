"""deitkit.transforms against transformers' image processors, built locally from config dicts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_transforms import convert_to_rgb

from deitkit.errors import ConfigError, ImageError
from deitkit.images import decode_image
from deitkit.transforms import PROCESSOR_DEFAULTS, EvalTransform, Resize

# facebook/deit-base-patch16-224's preprocessor_config.json, verbatim.
DEIT_CONFIG = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "DeiTFeatureExtractor",
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 3,
    "size": 256,
}
VIT_CONFIG = {
    "image_processor_type": "ViTImageProcessor",
    "size": {"height": 224, "width": 224},
    "do_center_crop": False,
    "resample": 2,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}
SHORTEST_EDGE_CONFIG = {
    "image_processor_type": "DeiTImageProcessor",
    "size": {"shortest_edge": 256},
    "crop_size": {"height": 224, "width": 224},
}


def _natural(width: int, height: int, seed: int) -> Image.Image:
    """Gradients plus a disc plus noise: content where resampling choices show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    disc = (x - width / 3) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2
    pixels[disc] = (230, 40, 90)
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sources() -> list[Image.Image]:
    """Images as opened, in their own modes."""
    rgba = _natural(333, 250, 6).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    return [
        _natural(640, 480, 0),  # landscape
        _natural(300, 900, 1),  # portrait
        _natural(7, 5, 2),  # tiny: upsampled
        _natural(2500, 1700, 3),  # huge
        _natural(256, 256, 4),  # square, already the resize size
        _natural(500, 400, 5).convert("L"),  # grayscale source
        rgba,  # transparency
    ]


@pytest.fixture(scope="module")
def hf_images(sources) -> list[Image.Image]:
    """What transformers gets: DeiT/ViT/BEiT processors take RGB, made by its own rule."""
    return [Image.fromarray(convert_to_rgb(image, return_numpy=True)) for image in sources]


@pytest.fixture(scope="module")
def images(sources) -> list[Image.Image]:
    """What deitkit gets: RGB from deitkit.images (grayscale and RGBA through a PNG)."""
    return [
        image if image.mode == "RGB" else decode_image(_encode(image, "PNG"), source=f"image {i}")
        for i, image in enumerate(sources)
    ]


def _hf_pixels(config: dict, folder: Path, images: list[Image.Image]) -> torch.Tensor:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    processor = AutoImageProcessor.from_pretrained(folder)
    return processor(images, return_tensors="pt")["pixel_values"]


def _assert_close(ours: torch.Tensor, reference: torch.Tensor, transform: EvalTransform) -> None:
    # Resampling only the crop box rounds Pillow's fixed-point filter weights a hair differently
    # from resampling the whole image: a few values end up one or two uint8 levels apart.
    level = transform.rescale_factor / min(transform.std)
    assert ours.shape == reference.shape
    for index in range(len(ours)):
        difference = (ours[index] - reference[index]).abs()
        assert difference.mean().item() <= 0.02, f"image {index}"
        assert difference.max().item() <= 2 * level + 1e-6, f"image {index}"
        assert (difference > 1e-5).float().mean().item() < 0.01, f"image {index}"


CONFIGS = {
    "deit": DEIT_CONFIG,
    "vit": VIT_CONFIG,
    "shortest_edge": SHORTEST_EDGE_CONFIG,
    # Smaller than the crop: transformers pads with zeros before normalising.
    "pad": {**SHORTEST_EDGE_CONFIG, "size": {"shortest_edge": 200}},
    "int_shortest_edge": {"image_processor_type": "CLIPImageProcessor", "size": 240},
    "odd_rect_nearest": {
        "image_processor_type": "BeitImageProcessor",
        "size": [181, 243],
        "do_center_crop": True,
        "crop_size": {"height": 151, "width": 200},
        "resample": 0,
        "do_normalize": False,
    },
    "crop_only": {"image_processor_type": "DeiTImageProcessor", "do_resize": False},
    **{f"defaults_{name}": {"image_processor_type": name} for name in PROCESSOR_DEFAULTS},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_transformers_image_processor(name, hf_images, images, tmp_path):
    config = CONFIGS[name]
    transform = EvalTransform.from_config(config)

    ours = transform(images)

    _assert_close(ours, _hf_pixels(config, tmp_path, hf_images), transform)
    assert ours.shape == (len(images), 3, *transform.output_size)


def test_one_thread_gives_the_same_pixels_as_several(images, monkeypatch):
    transform = EvalTransform.from_config(DEIT_CONFIG)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    threaded = transform(images)

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)

    assert torch.equal(transform(images), threaded)


def test_deit_config_resizes_to_a_square_then_crops():
    transform = EvalTransform.from_config(DEIT_CONFIG)

    assert transform.resize == Resize(height=256, width=256)
    assert transform.crop == (224, 224)
    assert transform.resample is Image.Resampling.BICUBIC
    assert transform.processor_type == "DeiTImageProcessor"
    assert transform == EvalTransform.for_image_size(224)


def test_output_is_channels_first_normalised_float32():
    transform = EvalTransform.for_image_size(32, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    image = Image.new("RGB", (50, 40), (255, 0, 51))

    pixels = transform([image, image])

    assert pixels.dtype == torch.float32 and pixels.is_contiguous()
    assert pixels.shape == (2, 3, 32, 32)
    expected = torch.tensor([1.0, -1.0, 0.2]).view(1, 3, 1, 1).expand_as(pixels)
    torch.testing.assert_close(pixels, expected)


def test_empty_batch_has_the_output_shape():
    assert EvalTransform.for_image_size(30)([]).shape == (0, 3, 30, 30)


def test_for_image_size_uses_deits_crop_ratio():
    transform = EvalTransform.for_image_size(30)

    assert transform.resize == Resize(height=34, width=34)
    assert transform.output_size == (30, 30)
    assert transform.min_size == (68, 68)


@pytest.mark.parametrize(
    ("config", "size", "resize", "crop"),
    [
        (DEIT_CONFIG, 384, Resize(height=438, width=438), (384, 384)),  # 256/224 kept
        (DEIT_CONFIG, 112, Resize(height=128, width=128), (112, 112)),
        (VIT_CONFIG, 384, Resize(height=384, width=384), None),  # no crop: resized to the size
        (SHORTEST_EDGE_CONFIG, 448, Resize(shortest_edge=512), (448, 448)),
    ],
)
def test_scaled_to_keeps_the_resize_to_crop_ratio(config, size, resize, crop):
    transform = EvalTransform.from_config(config)
    scaled = transform.scaled_to(size)
    assert (scaled.resize, scaled.crop) == (resize, crop)
    assert scaled.output_size == (size, size)
    assert (scaled.mean, scaled.std, scaled.resample) == (
        transform.mean,
        transform.std,
        transform.resample,
    )
    assert EvalTransform.from_config(scaled.to_config()) == scaled  # recorded as it runs


def test_scaled_to_for_deits_recipe_is_the_recipe_at_that_size():
    assert EvalTransform.for_image_size(32).scaled_to(48) == EvalTransform.for_image_size(48)
    transform = EvalTransform.from_config(DEIT_CONFIG)
    assert transform.scaled_to(224) is transform
    with pytest.raises(ConfigError, match="positive integer, got 0"):
        transform.scaled_to(0)


def test_min_size_keeps_results_when_a_decoder_drafts(images):
    jpeg = _encode(images[3], "JPEG", quality=90)
    transform = EvalTransform.from_config(DEIT_CONFIG)
    full = decode_image(jpeg)
    drafted = decode_image(jpeg, min_size=transform.min_size)

    assert drafted.width < full.width  # the hint lets the decoder skip work
    assert min(drafted.size) >= 512
    assert (transform([full]) - transform([drafted])).abs().mean().item() < 0.01


def test_min_size_for_shortest_edge_and_no_resize():
    assert EvalTransform.from_config(SHORTEST_EDGE_CONFIG).min_size == (512, 512)
    assert EvalTransform.from_config(CONFIGS["crop_only"]).min_size is None


# --- reduce: images cut down to the model's size as soon as they are decoded ----------------


@pytest.mark.parametrize("name", CONFIGS)
def test_reduce_gives_exactly_the_pixels_of_the_full_image(name, images):
    transform = EvalTransform.from_config(CONFIGS[name])
    reduced = [transform.reduce(image) for image in images]

    assert torch.equal(transform.pixels_uint8(reduced), transform.pixels_uint8(images))
    for small in reduced:
        assert small.mode == "RGB"
        assert transform.reduce(small) is small  # already reduced: kept as it is, no copy
        height, width = transform.output_size
        resize = transform.resize
        if resize is not None and resize.shortest_edge is None:
            assert small.size == (resize.width, resize.height)
        else:  # never more than the crop (or the edge) on either side
            side = max(height, width, resize.shortest_edge if resize else 0)
            assert max(small.size) <= side


@pytest.mark.parametrize("name", ["shortest_edge", "pad", "crop_only", "odd_rect_nearest"])
def test_reduce_of_a_very_long_image_keeps_only_about_the_crop(name):
    # 6000x12: resized to a shortest edge of 256 it would be 128,000 pixels long.
    image = _natural(6000, 12, 7)
    transform = EvalTransform.from_config(CONFIGS[name])

    small = transform.reduce(image)

    assert max(small.size) <= max(256, *transform.output_size)
    assert torch.equal(transform.pixels_uint8([small]), transform.pixels_uint8([image]))


def test_reduce_black_outside_the_crop_and_exact_inside():
    transform = EvalTransform.from_config(DEIT_CONFIG)  # 256 x 256, crop 224
    image = Image.new("RGB", (640, 480), (90, 160, 220))

    small = np.asarray(transform.reduce(image))

    assert small.shape == (256, 256, 3)
    assert (small[:16] == 0).all() and (small[:, 240:] == 0).all()
    assert (small[16:240, 16:240] == (90, 160, 220)).all()


def test_reducing_grayscale_then_converting_matches_converting_then_reducing(images):
    gray = images[5].convert("L")  # the grayscale source, as decoded
    for name in ("deit", "shortest_edge", "int_shortest_edge", "vit"):
        transform = EvalTransform.from_config(CONFIGS[name])
        via_gray = transform.reduce(gray).convert("RGB")
        via_rgb = transform.reduce(gray.convert("RGB"))
        assert np.array_equal(np.asarray(via_gray), np.asarray(via_rgb)), name


@pytest.mark.parametrize("name", ["deit", "vit", "shortest_edge", "odd_rect_nearest", "crop_only"])
def test_to_config_round_trips(name, images, tmp_path):
    transform = EvalTransform.from_config(CONFIGS[name])
    config = transform.to_config()

    assert EvalTransform.from_config(json.loads(json.dumps(config))) == transform
    _assert_close(transform(images), _hf_pixels(config, tmp_path, images), transform)


def test_from_pretrained_reads_the_folder_or_the_file(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(DEIT_CONFIG))

    assert EvalTransform.from_pretrained(tmp_path) == EvalTransform.from_config(DEIT_CONFIG)
    assert EvalTransform.from_pretrained(tmp_path / "preprocessor_config.json").crop == (224, 224)


def test_from_pretrained_takes_the_processor_from_config_json_model_type(tmp_path):
    config = {k: v for k, v in VIT_CONFIG.items() if k != "image_processor_type"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))

    assert EvalTransform.from_pretrained(tmp_path).processor_type == "ViTImageProcessor"


def test_a_processor_kept_apart_from_config_json_takes_the_model_type_given(tmp_path):
    # mlflow.transformers keeps it in components/image_processor/, away from the weights.
    config = {k: v for k, v in VIT_CONFIG.items() if k != "image_processor_type"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))

    loaded = EvalTransform.from_pretrained(tmp_path, model_type="vit")
    assert loaded.processor_type == "ViTImageProcessor"
    with pytest.raises(ConfigError, match="names no image_processor_type"):
        EvalTransform.from_pretrained(tmp_path)


def test_from_pretrained_without_the_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"preprocessor_config\.json: not found"):
        EvalTransform.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"size": 256,\n "crop_size": }', r"preprocessor_config\.json:2: invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"size": 256}', "names no image_processor_type"),
        ('{"image_processor_type": "ConvNextImageProcessor"}', "'ConvNextImageProcessor' is not"),
    ],
)
def test_from_pretrained_rejects_bad_files(tmp_path, text, message):
    (tmp_path / "preprocessor_config.json").write_text(text)

    with pytest.raises(ConfigError, match=message) as caught:
        EvalTransform.from_pretrained(tmp_path)
    assert str(tmp_path / "preprocessor_config.json") in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": {"longest_edge": 300}}, "size {'longest_edge': 300} is not supported"),
        ({"size": 0}, "size 0 is not supported"),
        ({"crop_size": {"shortest_edge": 224}}, "crop_size needs height and width"),
        ({"image_mean": [0.5, 0.5]}, "image_mean must be 3 numbers"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std .* contains 0"),
        ({"resample": 9}, "resample 9 is not one of"),
        ({"rescale_factor": -1}, "rescale_factor must be a positive number"),
        ({"size": {"shortest_edge": 256}, "do_center_crop": False}, "images of varying size"),
    ],
)
def test_from_config_rejects_bad_values(change, message):
    with pytest.raises(ConfigError, match=message):
        EvalTransform.from_config({**DEIT_CONFIG, **change}, source="ckpt/preprocessor_config.json")


def test_null_values_take_the_class_defaults():
    transform = EvalTransform.from_config(
        {"image_processor_type": "ViTImageProcessor", "size": None}
    )

    assert transform.resize == Resize(height=224, width=224)
    assert transform.crop is None


def test_rejects_images_that_are_not_rgb():
    transform = EvalTransform.for_image_size(30)
    batch = [Image.new("RGB", (40, 40)), Image.new("RGBA", (40, 40))]

    with pytest.raises(ImageError, match="image 1 has mode RGBA"):
        transform(batch)
    with pytest.raises(TypeError, match="sequence of images"):
        transform(batch[0])


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"height": 224},
        {"width": 9, "shortest_edge": 9},
        {"height": 1, "width": 1, "shortest_edge": 1},
    ],
)
def test_resize_takes_height_and_width_or_shortest_edge_alone(fields):
    with pytest.raises(ConfigError, match="either height and width, or shortest_edge alone"):
        Resize(**fields)
