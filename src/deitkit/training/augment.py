"""Batch training augmentation (kornia) and the matching evaluation crop, uint8 batches in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import kornia.augmentation as K
import torch
from kornia.augmentation.auto import RandAugment

from deitkit.errors import ConfigError

# RandAugment as in DeiT (rand-m9): two operations. kornia's magnitude runs over (0, 30), not
# timm's 0–10, so m=9 here is a milder setting than DeiT's m9 (e.g. ±9° rotation, not ±27°).
_RAND_AUGMENT_OPS = 2
_RAND_AUGMENT_MAGNITUDE = 9
# The per-image ops run on slices of about this many pixels (16 images of 256x256): slices that
# stay in the CPU cache run ~2x faster than one pass over a 64x3x256x256 batch, while small images
# stay in one call (kornia's per-call overhead). RandAugment also draws its ops once per slice.
_SLICE_PIXELS = 16 * 256 * 256
# timm's Mixup default: with both mixup and cutmix on, each batch gets one of them, 50/50.
_SWITCH_PROB = 0.5


@dataclass(frozen=True)
class AugmentConfig:
    """Which training augmentations run; the defaults are Azure ML's `apply_augmentations`.

    Attributes:
        enabled: RandomResizedCrop (`scale`, `ratio`), horizontal flip (p=0.5) and colour jitter
            (`color_jitter`, p=0.5). Off: the evaluation centre crop.
        rand_augment: RandAugment with 2 operations at kornia magnitude 9; it replaces the colour
            jitter, as in timm and DeiT.
        mixup_alpha: Mixup with lambda ~ Beta(alpha, alpha) per image; 0 is off (DeiT: 0.8).
        cutmix_alpha: CutMix with lambda ~ Beta(alpha, alpha) per image; 0 is off (DeiT: 1.0).
            With both on, each batch gets one of the two at random.
        random_erasing: Probability of erasing a rectangle per image, filled with the mean colour
            (0 after normalising); 0 is off (DeiT: 0.25).
        scale: Range of the crop's area as a fraction of the image's.
        ratio: Range of the crop's aspect ratio (width / height).
        color_jitter: Brightness, contrast and saturation jitter strength (timm's convention:
            no hue); 0 is off.
    """

    enabled: bool = True
    rand_augment: bool = False
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    random_erasing: float = 0.0
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    color_jitter: float = 0.4

    def __post_init__(self) -> None:
        for name in ("mixup_alpha", "cutmix_alpha", "color_jitter"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < math.inf:
                raise ConfigError(f"{name} must be a number >= 0 (0 turns it off), got {value!r}")
        if not _is_number(self.random_erasing) or not 0 <= self.random_erasing <= 1:
            raise ConfigError(
                f"random_erasing is a probability in [0, 1], got {self.random_erasing!r}"
            )
        for name, top in (("scale", 1.0), ("ratio", math.inf)):
            low, high = _pair(getattr(self, name), name)
            if not 0 < low <= high <= top:
                allowed = "0 < min <= max" + (" <= 1" if top == 1 else "")
                raise ConfigError(f"{name} must be (min, max) with {allowed}, got {(low, high)}")

    @property
    def mixes(self) -> bool:
        """Whether mixup or cutmix is on (targets become soft)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


class EvalCrop:
    """Centre crop of a uint8 (N, 3, H, W) batch to `output_size`, then rescale and normalise.

    The crop offsets and the arithmetic are those of `deitkit.transforms.EvalTransform`, so a batch
    decoded at the pre-crop size gives the same values as evaluation and serving.

    Args:
        output_size: (height, width) of the crop.
        mean: Per-channel mean of the model's preprocessing, on the [0, 1] scale.
        std: Per-channel standard deviation, on the [0, 1] scale.
    """

    def __init__(
        self, *, output_size: tuple[int, int], mean: Sequence[float], std: Sequence[float]
    ) -> None:
        self.output_size = _size(output_size)
        self.mean, self.std = _channels(mean, "mean"), _channels(std, "std")
        # (x / 255 - mean) / std folded into one multiply-add, computed as EvalTransform does.
        std64 = torch.tensor(self.std, dtype=torch.float64)
        self._scale = (1 / 255 / std64).to(torch.float32).view(1, 3, 1, 1)
        self._shift = (
            (-torch.tensor(self.mean, dtype=torch.float64) / std64).float().view(1, 3, 1, 1)
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Return float32 (N, 3, out_h, out_w) pixel values from uint8 (N, 3, H, W) images."""
        pixels = self.crop(images).to(torch.float32, memory_format=torch.contiguous_format)
        return pixels.mul_(self._scale).add_(self._shift)

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """The uint8 centre crop (a view of `images`)."""
        _check_images(images, self.output_size)
        height, width = images.shape[-2:]
        out_h, out_w = self.output_size
        top, left = (height - out_h) // 2, (width - out_w) // 2
        return images[:, :, top : top + out_h, left : left + out_w]


class TrainAugment:
    """Random augmentation of a uint8 (N, 3, H, W) batch into normalised model inputs.

    Built once; every call draws from torch's global RNG (seeded by the Trainer, and per worker
    by the DataLoader). Order, as in timm/DeiT: crop, flip, colour (jitter or RandAugment) on
    [0, 1] floats; normalise; random erasing; then mixup/cutmix across the batch.

    Args:
        config: Which augmentations run.
        output_size: (height, width) the model takes.
        mean: Per-channel mean of the model's preprocessing, on the [0, 1] scale.
        std: Per-channel standard deviation, on the [0, 1] scale.
        num_labels: Number of classes; the width of soft targets.
        multilabel: Targets are (N, C) indicator vectors rather than (N,) class indices.
    """

    def __init__(
        self,
        config: AugmentConfig,
        *,
        output_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        num_labels: int,
        multilabel: bool,
    ) -> None:
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ConfigError(f"num_labels must be a positive integer, got {num_labels!r}")
        self.config = config
        self.num_labels = num_labels
        self.multilabel = multilabel
        self.eval_crop = EvalCrop(output_size=output_size, mean=mean, std=std)
        self.output_size = self.eval_crop.output_size
        self._scale, self._shift = _normaliser(self.eval_crop.mean, self.eval_crop.std, 1.0)

        ops: list[torch.nn.Module] = []
        if config.enabled:
            ops.append(
                # Half-pixel sampling (align_corners=False) is how PIL and torchvision resize.
                K.RandomResizedCrop(
                    self.output_size, scale=config.scale, ratio=config.ratio, align_corners=False
                )
            )
            ops.append(K.RandomHorizontalFlip(p=0.5))
            if config.color_jitter > 0 and not config.rand_augment:
                jitter = config.color_jitter
                ops.append(K.ColorJitter(jitter, jitter, jitter, 0.0, p=0.5))
        if config.rand_augment:
            ops.append(RandAugment(n=_RAND_AUGMENT_OPS, m=_RAND_AUGMENT_MAGNITUDE))
        self._ops = ops
        self._erase = (
            K.RandomErasing(p=config.random_erasing, value=0.0) if config.random_erasing else None
        )
        self._mixup = K.RandomMixUpV2(data_keys=["input", "class"]) if config.mixup_alpha else None
        self._cutmix = (
            K.RandomCutMixV2(
                beta=config.cutmix_alpha, data_keys=["input", "class"], use_correct_lambda=True
            )
            if config.cutmix_alpha
            else None
        )

    @property
    def mixes_targets(self) -> bool:
        """True when targets come back as soft (N, num_labels) float vectors."""
        return self.config.mixes

    @torch.no_grad()
    def __call__(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            images: uint8 (N, 3, H, W), decoded at the evaluation transform's pre-crop size.
            targets: int64 (N,) class indices, or float (N, num_labels) indicators (multilabel).

        Returns:
            float32 (N, 3, out_h, out_w) normalised pixel values, and the targets: unchanged
            unless mixing is on, then float32 (N, num_labels) mixed one-hot/indicator vectors.
        """
        self._check_targets(targets, len(images))
        if not self._ops:
            pixels = self.eval_crop(images)  # nothing per image: exactly the evaluation input
        else:
            if self.config.enabled:
                _check_images(images, None)
            else:
                images = self.eval_crop.crop(images)  # no random geometry: the evaluation crop
            per_slice = max(1, _SLICE_PIXELS // (images.shape[2] * images.shape[3]))
            pixels = torch.cat([self._augment(part) for part in images.split(per_slice)])
        if self._erase is not None:
            pixels = self._erase(pixels)
        if not self.mixes_targets:
            return pixels, targets
        return self._mix(pixels, targets)

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        """Run the per-image ops on a uint8 slice, on [0, 1] floats, and normalise the result."""
        pixels = images.float().div_(255)
        for op in self._ops:
            pixels = op(pixels)
        return pixels.mul_(self._scale).add_(self._shift)

    def _mix(
        self, pixels: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or CutMix across the batch, and the targets mixed by the same weights."""
        soft = targets.float() if self.multilabel else _one_hot(targets, self.num_labels)
        use_cutmix = self._cutmix is not None and (
            self._mixup is None or torch.rand(()).item() < _SWITCH_PROB
        )
        # Passing row indices as the "class" input makes kornia report, per row, the partner it
        # was mixed with and the weight, which mixes one-hot and multilabel vectors alike.
        rows = torch.arange(len(pixels))
        if use_cutmix:
            mixed, info = self._cutmix(pixels, rows)
            info = info[0]  # one cut per image: (N, 3) rows of (self, partner, self weight)
            partner_weight = 1 - info[:, 2]
        else:
            params = self._mixup.forward_parameters(pixels.shape)
            # kornia draws lambda uniformly; mixup's Beta(alpha, alpha) replaces it.
            alpha = torch.tensor(float(self.config.mixup_alpha))
            params["mixup_lambdas"] = torch.distributions.Beta(alpha, alpha).sample(rows.shape)
            mixed, info = self._mixup(pixels, rows, params=params)
            partner_weight = info[:, 2]  # image = (1 - lambda) * self + lambda * partner
        partner = info[:, 1].long()
        weight = partner_weight.unsqueeze(1)
        return mixed, (1 - weight) * soft + weight * soft[partner]

    def _check_targets(self, targets: torch.Tensor, count: int) -> None:
        if self.multilabel:
            if targets.shape != (count, self.num_labels) or not targets.is_floating_point():
                raise ValueError(
                    f"multilabel targets must be float ({count}, {self.num_labels}), "
                    f"got {targets.dtype} {tuple(targets.shape)}"
                )
            return
        if targets.shape != (count,) or targets.dtype != torch.int64:
            raise ValueError(
                f"multiclass targets must be int64 ({count},), "
                f"got {targets.dtype} {tuple(targets.shape)}"
            )
        if count and not 0 <= int(targets.min()) <= int(targets.max()) < self.num_labels:
            raise ValueError(
                f"class indices must lie in [0, {self.num_labels}), "
                f"got {targets.min().item()}..{targets.max().item()}"
            )


def _normaliser(
    mean: Sequence[float], std: Sequence[float], factor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift): x * scale + shift == (x * factor - mean) / std, as in EvalTransform."""
    std64 = torch.tensor(std, dtype=torch.float64)
    scale = (factor / std64).float().view(1, 3, 1, 1)
    shift = (-torch.tensor(mean, dtype=torch.float64) / std64).float().view(1, 3, 1, 1)
    return scale, shift


def _one_hot(targets: torch.Tensor, num_labels: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(targets, num_labels).float()


def _check_images(images: torch.Tensor, min_size: tuple[int, int] | None) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if min_size is not None and (images.shape[2] < min_size[0] or images.shape[3] < min_size[1]):
        raise ValueError(
            f"images of {images.shape[2]}x{images.shape[3]} are smaller than the crop "
            f"{min_size[0]}x{min_size[1]}; decode at the evaluation transform's pre-crop size"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pair(value: object, name: str) -> tuple[float, float]:
    if not (isinstance(value, tuple | list) and len(value) == 2 and all(map(_is_number, value))):
        raise ConfigError(f"{name} must be a pair of numbers (min, max), got {value!r}")
    return float(value[0]), float(value[1])


def _size(value: object) -> tuple[int, int]:
    if not (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(f"output_size must be (height, width) positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _channels(value: object, name: str) -> tuple[float, float, float]:
    if not (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 3
        and all(map(_is_number, value))
    ):
        raise ConfigError(f"{name} must be 3 numbers (R, G, B), got {value!r}")
    if name == "std" and any(v <= 0 for v in value):
        raise ConfigError(f"std must be positive, got {list(value)}")
    return float(value[0]), float(value[1]), float(value[2])
