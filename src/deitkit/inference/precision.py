"""bf16 inference only where the hardware runs it natively and it keeps the model's predictions."""

from __future__ import annotations

from collections.abc import Callable

import torch

from deitkit.errors import ConfigError
from deitkit.tasks import Task
from deitkit.training.precision import Precision, cpu_supports_bf16

DTYPES = ("auto", "float32", "bfloat16")
CALIBRATION_IMAGES = 8

# probs = forward(normalised pixels, bf16?) for a batch.
Forward = Callable[[torch.Tensor, bool], torch.Tensor]


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix maths is native: AMX/AVX512-BF16 CPUs, Ampere and later GPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_supports_bf16()


def calibration_pixels(height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """A fixed (N, 3, H, W) uint8 batch: half pixel noise, half smooth colour fields.

    Noise has the high frequencies of texture, the smooth fields the flat regions of photos; the
    seed makes the bf16 decision the same on every load.
    """
    generator = torch.Generator().manual_seed(seed)
    half = CALIBRATION_IMAGES // 2
    noise = torch.randint(0, 256, (half, 3, height, width), generator=generator)
    coarse = torch.rand((CALIBRATION_IMAGES - half, 3, 4, 4), generator=generator) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return torch.cat([noise, smooth.round()]).to(torch.uint8)


def same_predictions(
    reference: torch.Tensor, candidate: torch.Tensor, *, task: Task, threshold: float
) -> bool:
    """True when `candidate` probabilities pick the same labels as `reference` for every row.

    Both must agree on the top-1 label; for multilabel models also on the labels at or over
    `threshold`.
    """
    if not torch.equal(reference.argmax(dim=1), candidate.argmax(dim=1)):
        return False
    if task.is_multilabel:
        return torch.equal(reference >= threshold, candidate >= threshold)
    return True


def choose_precision(
    requested: str,
    forward: Forward,
    pixels: torch.Tensor,
    *,
    device: torch.device,
    task: Task,
    threshold: float,
) -> Precision:
    """Resolve `requested` (auto, float32, bfloat16) to what the model runs in, and why.

    `auto` picks bf16 only where it is native and `forward` on `pixels` (the calibration batch,
    normalised) keeps every prediction of fp32; otherwise fp32.
    """
    if requested not in DTYPES:
        raise ConfigError(f"dtype {requested!r} is not supported; expected one of: {DTYPES}")
    if requested == "float32":
        return Precision("fp32", "requested")
    if requested == "bfloat16":
        if native_bf16(device):
            return Precision("bf16", "requested")
        return Precision("bf16", f"requested; {device.type} has no native bf16 (slower than fp32)")
    if not native_bf16(device):
        return Precision("fp32", f"{device.type} has no native bf16")
    reference = forward(pixels, False)
    candidate = forward(pixels, True)
    if not same_predictions(reference, candidate, task=task, threshold=threshold):
        return Precision("fp32", "bf16 changed predictions on the calibration images")
    drift = (reference - candidate).abs().max().item()
    return Precision("bf16", f"native bf16 keeps all predictions (max prob change {drift:.1e})")
