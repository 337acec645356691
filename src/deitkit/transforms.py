"""Evaluation preprocessing (resize, crop, rescale, normalise) from a preprocessor_config.json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from deitkit.errors import ConfigError, ImageError

CONFIG_NAME = "preprocessor_config.json"

# Class defaults of the transformers image processors whose images take the standard path
# (resize → center crop → rescale → normalise). tests/test_transforms.py checks them against the
# installed transformers. Processors with other semantics (ConvNeXt's crop_pct, LeViT, ...) are
# refused rather than approximated.
_HALF = (0.5, 0.5, 0.5)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_BICUBIC, _BILINEAR = int(Image.Resampling.BICUBIC), int(Image.Resampling.BILINEAR)
PROCESSOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "DeiTImageProcessor": {
        "size": {"height": 256, "width": 256}, "crop_size": {"height": 224, "width": 224},
        "do_center_crop": True, "resample": _BICUBIC, "image_mean": _HALF, "image_std": _HALF,
    },
    "ViTImageProcessor": {
        "size": {"height": 224, "width": 224}, "crop_size": None,
        "do_center_crop": None, "resample": _BILINEAR, "image_mean": _HALF, "image_std": _HALF,
    },
    "BeitImageProcessor": {
        "size": {"height": 224, "width": 224}, "crop_size": {"height": 224, "width": 224},
        "do_center_crop": False, "resample": _BICUBIC, "image_mean": _HALF, "image_std": _HALF,
    },
    "BitImageProcessor": {
        "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224},
        "do_center_crop": True, "resample": _BICUBIC, "image_mean": _CLIP_MEAN,
        "image_std": _CLIP_STD, "default_to_square": False,
    },
    "CLIPImageProcessor": {
        "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224},
        "do_center_crop": True, "resample": _BICUBIC, "image_mean": _CLIP_MEAN,
        "image_std": _CLIP_STD, "default_to_square": False,
    },
}  # fmt: skip
_COMMON_DEFAULTS = {
    "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "default_to_square": True,
}  # fmt: skip
# The model_type in config.json picks the processor when preprocessor_config.json names none,
# as in AutoImageProcessor's mapping.
MODEL_TYPE_PROCESSORS = {
    "deit": "DeiTImageProcessor",
    "vit": "ViTImageProcessor",
    "swin": "ViTImageProcessor",
    "beit": "BeitImageProcessor",
    "data2vec-vision": "BeitImageProcessor",
    "bit": "BitImageProcessor",
    "dinov2": "BitImageProcessor",
    "clip": "CLIPImageProcessor",
}
# Pillow's own default for Image.thumbnail (reducing_gap=2.0): decoding at no less than twice the
# target size before the final resample leaves the result nearly unchanged.
_REDUCING_GAP = 2


@dataclass(frozen=True)
class Resize:
    """A resize target: a fixed `height` x `width` (aspect ratio not kept) or a `shortest_edge`."""

    height: int | None = None
    width: int | None = None
    shortest_edge: int | None = None

    def __post_init__(self) -> None:
        fixed, edge = (self.height, self.width), self.shortest_edge
        if not ((None not in fixed and edge is None) or (fixed == (None, None) and edge)):
            raise ConfigError(f"{self} needs either height and width, or shortest_edge alone")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of `width` x `height` is resized to."""
        if self.shortest_edge is None:
            return self.width, self.height
        # transformers' get_resize_output_image_size: the long edge is truncated, not rounded.
        short, long = sorted((width, height))
        new_long = int(self.shortest_edge * long / short)
        if width <= height:
            return self.shortest_edge, new_long
        return new_long, self.shortest_edge

    def to_config(self) -> dict[str, int]:
        if self.shortest_edge is not None:
            return {"shortest_edge": self.shortest_edge}
        return {"height": self.height, "width": self.width}


@dataclass(frozen=True)
class EvalTransform:
    """Batch preprocessing with the semantics of transformers' image processors (PIL backend).

    Args:
        resize: Resize target, or None to keep the decoded size.
        crop: (height, width) of the center crop, or None; zero-padded where the image is smaller.
        mean: Per-channel mean subtracted after rescaling.
        std: Per-channel standard deviation divided by after subtracting the mean.
        rescale_factor: Multiplies the uint8 pixel values (1/255 maps them to [0, 1]).
        resample: Pillow resampling filter of the resize.
        processor_type: transformers image processor class written by `to_config`.
    """

    resize: Resize | None
    crop: tuple[int, int] | None
    mean: tuple[float, float, float] = _HALF
    std: tuple[float, float, float] = _HALF
    rescale_factor: float = 1 / 255
    resample: Image.Resampling = Image.Resampling.BICUBIC
    processor_type: str = "DeiTImageProcessor"

    def __post_init__(self) -> None:
        if self.crop is None and (self.resize is None or self.resize.shortest_edge is not None):
            raise ConfigError(
                f"preprocessing with resize={self.resize} and no center crop gives images of "
                "varying size; set do_center_crop with a crop_size, or a size with height and width"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, source: str = CONFIG_NAME) -> EvalTransform:
        """Build the transform a transformers image processor would apply for `config`.

        Args:
            config: The contents of a preprocessor_config.json.
            source: Names the config in error messages.
        """
        processor_type = _processor_type(config, source)
        known = {**_COMMON_DEFAULTS, **PROCESSOR_DEFAULTS[processor_type]}

        def get(key: str) -> Any:
            # transformers treats a key set to null like a missing one: the class default applies.
            return config[key] if config.get(key) is not None else known.get(key)

        resize = None
        if get("do_resize"):
            resize = _parse_size(get("size"), bool(get("default_to_square")), source)
        crop = None
        if get("do_center_crop"):
            crop_size = _parse_size(get("crop_size"), True, source, key="crop_size")
            if crop_size.shortest_edge is not None:
                raise ConfigError(f"{source}: crop_size needs height and width, got {crop_size}")
            crop = (crop_size.height, crop_size.width)
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        if get("do_normalize"):
            mean = _parse_channels(get("image_mean"), "image_mean", source)
            std = _parse_channels(get("image_std"), "image_std", source)
            if 0.0 in std:
                raise ConfigError(f"{source}: image_std {list(std)} contains 0")
        factor = get("rescale_factor") if get("do_rescale") else 1.0
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
            raise ConfigError(f"{source}: rescale_factor must be a positive number, got {factor!r}")
        resample = get("resample")
        if resample not in {int(r) for r in Image.Resampling} or isinstance(resample, bool):
            allowed = ", ".join(f"{int(r)} ({r.name})" for r in Image.Resampling)
            raise ConfigError(f"{source}: resample {resample!r} is not one of {allowed}")
        return cls(
            resize, crop, mean, std, float(factor), Image.Resampling(resample), processor_type
        )

    @classmethod
    def from_pretrained(cls, path: str | Path, *, model_type: str | None = None) -> EvalTransform:
        """Read `path`/preprocessor_config.json (or `path` itself when it is that file).

        Args:
            path: The folder or the file.
            model_type: The model's config.json `model_type`, which picks the processor when the
                file names none; None: read from a config.json beside the file.
        """
        path = Path(path)
        file = path if path.is_file() else path / CONFIG_NAME
        if not file.is_file():
            raise ConfigError(f"{file}: not found; a checkpoint folder needs {CONFIG_NAME}")
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{file}:{err.lineno}: invalid JSON: {err.msg}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{file}: cannot be read: {err}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"{file}: expected a JSON object, got {type(config).__name__}")
        if not (config.get("image_processor_type") or config.get("feature_extractor_type")):
            model_type = model_type or _model_type(file.parent / "config.json")
            if model_type in MODEL_TYPE_PROCESSORS:
                config = {**config, "image_processor_type": MODEL_TYPE_PROCESSORS[model_type]}
        return cls.from_config(config, source=str(file))

    @classmethod
    def for_image_size(
        cls,
        size: int,
        *,
        mean: Sequence[float] = _HALF,
        std: Sequence[float] = _HALF,
    ) -> EvalTransform:
        """DeiT's evaluation recipe for `size` pixels: resize to size/0.875, center crop `size`.

        The resize squashes to a square, as facebook/deit-*'s `size: 256` does in transformers.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"image size must be a positive integer, got {size!r}")
        resized = int(size / 0.875)  # DeiT's crop ratio: 224 of 256
        return cls(
            Resize(height=resized, width=resized),
            (size, size),
            _parse_channels(mean, "mean", "for_image_size"),
            _parse_channels(std, "std", "for_image_size"),
        )

    def scaled_to(self, size: int) -> EvalTransform:
        """This preprocessing for `size` x `size` outputs, keeping its resize-to-crop ratio.

        The crop becomes `size`; a resize before a crop is scaled by the same factor (rounded
        down, as `for_image_size` does: DeiT's 256 → 224 becomes 438 → 384); a resize with no
        crop becomes `size` x `size`. Mean, std, resampling and processor type are kept.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"image size must be a positive integer, got {size!r}")
        height, width = self.output_size
        if (height, width) == (size, size):
            return self
        resize = self.resize
        if resize is not None and self.crop is None:
            resize = Resize(height=size, width=size)
        elif resize is not None and resize.shortest_edge is not None:
            resize = Resize(shortest_edge=resize.shortest_edge * size // min(height, width))
        elif resize is not None:
            resize = Resize(
                height=resize.height * size // height, width=resize.width * size // width
            )
        crop = (size, size) if self.crop is not None else None
        return replace(self, resize=resize, crop=crop)

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of each image in the output tensor."""
        if self.crop is not None:
            return self.crop
        return self.resize.height, self.resize.width

    @property
    def min_size(self) -> tuple[int, int] | None:
        """Smallest (width, height) a decoder may draft to; None: decode at full size.

        Pass it as `min_size` to `deitkit.images.decode_image` and `load_image`.
        """
        if self.resize is None:
            return None
        if self.resize.shortest_edge is not None:
            edge = _REDUCING_GAP * self.resize.shortest_edge
            return edge, edge
        return _REDUCING_GAP * self.resize.width, _REDUCING_GAP * self.resize.height

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Preprocess RGB images into a (N, 3, H, W) float32 tensor."""
        return self.normalize(self.pixels_uint8(images))

    def pixels_uint8(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize and crop RGB images into a (N, 3, H, W) uint8 tensor (training caches these)."""
        if isinstance(images, Image.Image):
            raise TypeError("EvalTransform takes a sequence of images; wrap one image in a list")
        height, width = self.output_size
        batch = np.zeros((len(images), height, width, 3), dtype=np.uint8)
        for index, image in enumerate(images):
            if image.mode != "RGB":
                raise ImageError(
                    f"image {index} has mode {image.mode}; expected RGB (deitkit.images converts)"
                )
        # Pillow releases the GIL while resampling, so threads scale. Following torch's thread
        # count keeps DataLoader workers (one torch thread each) sequential. A pool per call
        # (not a module-level one) stays safe when a DataLoader forks.
        workers = min(torch.get_num_threads(), len(images))
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(self._resize_crop_into, images, batch))
        else:
            for image, out in zip(images, batch, strict=True):
                self._resize_crop_into(image, out)
        return torch.from_numpy(batch).permute(0, 3, 1, 2)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Rescale and normalise a uint8 (N, 3, H, W) tensor into float32."""
        pixels = pixels.to(torch.float32, memory_format=torch.contiguous_format)
        # (x * factor - mean) / std folded into one multiply-add per value.
        std = np.asarray(self.std, dtype=np.float64)
        scale = torch.tensor(self.rescale_factor / std, dtype=torch.float32).view(1, 3, 1, 1)
        shift = torch.tensor(-np.asarray(self.mean) / std, dtype=torch.float32).view(1, 3, 1, 1)
        return pixels.mul_(scale).add_(shift)

    def reduce(self, image: Image.Image) -> Image.Image:
        """The smallest image this transform turns into exactly the pixels it makes of `image`.

        Decoders call it on each image as soon as it is decoded, so that a batch holds images of
        about the model's size instead of full-size ones. The result has the resize's output size
        (for a `shortest_edge` resize, its long side cut to the crop's or the edge's length; with
        no resize, the crop's size), holds the resized center crop, computed as `pixels_uint8`
        computes it, and is black outside the crop. Resizing it is a no-op, so `pixels_uint8`
        only crops it. An image of that size comes back as it is, so reducing twice changes
        nothing.

        Args:
            image: A decoded image in any mode Pillow resamples (RGB or L here).
        """
        width, height = image.size
        new_w, new_h = self._resized_size(width, height)
        crop_h, crop_w = self.crop or (new_h, new_w)
        kept_w, kept_h = self._kept_length(new_w, crop_w), self._kept_length(new_h, crop_h)
        if (kept_w, kept_h) == (width, height):
            return image
        part, _ = self._crop_part(image)
        if part.size == (kept_w, kept_h):
            return part
        # Where pixels_uint8 will look for the crop in the reduced image.
        left, top = _crop_axis(kept_w, crop_w)[0], _crop_axis(kept_h, crop_h)[0]
        reduced = Image.new(image.mode, (kept_w, kept_h))
        reduced.paste(part, (left, top))
        return reduced

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        return self.resize.output_size(width, height) if self.resize else (width, height)

    def _kept_length(self, resized: int, crop: int) -> int:
        """How much of one axis of the resized image `reduce` keeps (see `reduce`)."""
        if self.resize is None:
            return min(resized, crop)  # the crop alone: cropping it again changes nothing
        edge = self.resize.shortest_edge
        if edge is None:
            return resized  # a fixed size: any other size would be resized again
        # The short side stays the edge; the long side keeps the crop (at least the edge, so
        # that it stays the long side and the resize stays a no-op).
        return min(resized, max(edge, crop))

    def _resize_crop_into(self, image: Image.Image, out: np.ndarray) -> None:
        """Write resize-then-crop of `image` into `out` (H, W, 3), resampling only the crop."""
        part, (left, top) = self._crop_part(image)
        out[top : top + part.height, left : left + part.width] = np.asarray(part)

    def _crop_part(self, image: Image.Image) -> tuple[Image.Image, tuple[int, int]]:
        """Resize-then-crop of `image` without padding, and where it lands in the output (x, y)."""
        width, height = image.size
        new_w, new_h = self._resized_size(width, height)
        crop_h, crop_w = self.crop or (new_h, new_w)
        # Per axis: where the crop starts in the resized image, how much of it is there, and where
        # it lands in `out` (transformers pads a too-small image with zeros, centred, ceil first).
        src_x, n_x, dst_x = _crop_axis(new_w, crop_w)
        src_y, n_y, dst_y = _crop_axis(new_h, crop_h)
        crop_box = (src_x, src_y, src_x + n_x, src_y + n_y)  # in resized coordinates
        if (new_w, new_h) == (width, height):
            # No resize, or a reduced image: Pillow's resample at scale 1 copies pixels exactly.
            part = image.crop(crop_box)
        elif self.resample is Image.Resampling.NEAREST:
            # Pillow's nearest-neighbour path rounds box coordinates its own way: resize it all.
            part = image.resize((new_w, new_h), self.resample).crop(crop_box)
        else:
            # Resampling only the crop box rounds Pillow's fixed-point weights a hair differently
            # from resizing the whole image and cropping (tests/test_transforms.py allows for it
            # against transformers); it saves resampling what the crop drops.
            # Multiplying before dividing maps the far edge exactly onto the image border.
            scales = (width, height, width, height)
            sizes = (new_w, new_h, new_w, new_h)
            box = tuple(v * s / n for v, s, n in zip(crop_box, scales, sizes, strict=True))
            part = image.resize((n_x, n_y), self.resample, box=box)
        return part, (dst_x, dst_y)

    def to_config(self) -> dict[str, Any]:
        """A preprocessor_config.json dict that transformers and `from_config` read back alike."""
        config: dict[str, Any] = {
            "image_processor_type": self.processor_type,
            "do_resize": self.resize is not None,
            "do_center_crop": self.crop is not None,
            "do_rescale": True,
            "rescale_factor": self.rescale_factor,
            "do_normalize": True,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
            "resample": int(self.resample),
        }
        if self.resize is not None:
            config["size"] = self.resize.to_config()
        if self.crop is not None:
            config["crop_size"] = {"height": self.crop[0], "width": self.crop[1]}
        return config


def _crop_axis(size: int, crop: int) -> tuple[int, int, int]:
    """(source start, length, destination start) of a center crop along one axis."""
    if size >= crop:
        return (size - crop) // 2, crop, 0
    return 0, size, (crop - size + 1) // 2


def _processor_type(config: Mapping[str, Any], source: str) -> str:
    name = config.get("image_processor_type") or config.get("feature_extractor_type")
    if not name:
        raise ConfigError(
            f"{source}: names no image_processor_type (nor feature_extractor_type); "
            f"expected one of: {', '.join(PROCESSOR_DEFAULTS)}"
        )
    # Older configs name the feature extractor, newer ones may name a backend variant.
    canonical = str(name).replace("FeatureExtractor", "ImageProcessor").removesuffix("Fast")
    canonical = canonical.removesuffix("Pil")
    if canonical not in PROCESSOR_DEFAULTS:
        raise ConfigError(
            f"{source}: image processor {name!r} is not supported; "
            f"expected one of: {', '.join(PROCESSOR_DEFAULTS)}"
        )
    return canonical


def _parse_size(value: Any, default_to_square: bool, source: str, key: str = "size") -> Resize:
    """Read a size the way transformers' get_size_dict does (int, [h, w] or a dict)."""
    if _is_size(value):
        return (
            Resize(height=value, width=value) if default_to_square else Resize(shortest_edge=value)
        )
    if isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_size, value)):
        return Resize(height=value[0], width=value[1])
    if isinstance(value, dict) and all(map(_is_size, value.values())):
        if set(value) == {"height", "width"}:
            return Resize(height=value["height"], width=value["width"])
        if set(value) == {"shortest_edge"}:
            return Resize(shortest_edge=value["shortest_edge"])
    raise ConfigError(
        f"{source}: {key} {value!r} is not supported; expected a positive int, [height, width], "
        '{"height": H, "width": W} or {"shortest_edge": S}'
    )


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _parse_channels(value: Any, key: str, source: str) -> tuple[float, float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * 3
    if not (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{source}: {key} must be 3 numbers (R, G, B), got {value!r}")
    return tuple(float(v) for v in value)


def _model_type(config_file: Path) -> str | None:
    try:
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
