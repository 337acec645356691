"""Faster inference (int8 on CPUs, bf16 where native) only where it keeps the predictions."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from deitkit.errors import ConfigError
from deitkit.inference.quantize import int8_engine
from deitkit.precision import AUTO, BF16, FP32, INT8, Precision, cpu_supports_bf16, parse_precision
from deitkit.tasks import Task

# What inference runs in (`deitkit.precision` names); `float32`/`bfloat16` are accepted as input.
INFERENCE_PRECISIONS = (AUTO, FP32, BF16, INT8)
# Overrides `auto` for every loader (server, batch, evaluate) when no dtype is passed.
DTYPE_ENV = "DEITKIT_INFERENCE_DTYPE"
# What `auto` tries, fastest first, before settling for fp32.
AUTO_ORDER = (INT8, BF16)
CALIBRATION_IMAGES = 8
# int8 must also stay this close to fp32's probabilities (bf16 stays within ~2e-3 on DeiT-base).
MAX_INT8_DRIFT = 0.05

# probs = forward(normalised pixels, precision name: fp32, bf16 or int8) for a batch.
Forward = Callable[[torch.Tensor, str], torch.Tensor]


def requested_precision(dtype: str | None = None) -> str:
    """The precision asked for: `dtype`, else `$DEITKIT_INFERENCE_DTYPE`, else `auto`.

    The one place where a requested inference precision is checked; aliases (`float32`,
    `bfloat16`) become internal names (`fp32`, `bf16`).

    Raises:
        ConfigError: the value is not one of INFERENCE_PRECISIONS under any spelling, naming
            where it came from.
    """
    if dtype:
        return _parse(dtype, where="dtype")
    from_env = os.environ.get(DTYPE_ENV, "").strip()
    return _parse(from_env, where=DTYPE_ENV) if from_env else AUTO


def _parse(value: str, *, where: str) -> str:
    return parse_precision(value, allowed=INFERENCE_PRECISIONS, where=where)


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix maths is native: AMX/AVX512-BF16 CPUs, Ampere and later GPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_supports_bf16()


def cpu_int8(device: torch.device) -> bool:
    """True on a CPU whose torch build has a quantized engine (int8 Linear kernels)."""
    return device.type == "cpu" and int8_engine() is not None


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
    """Resolve `requested` (auto, fp32, bf16, int8) to what the model runs in, and why.

    `auto` tries int8 (CPUs with a quantized engine), then bf16 (where native), and keeps the
    first whose probabilities on `pixels` (the calibration batch, normalised) pick every label
    fp32 picks (int8 must also stay within MAX_INT8_DRIFT); otherwise fp32.

    Args:
        requested: An internal name, as `requested_precision` returns it.

    Raises:
        ConfigError: int8 was requested on a device without a quantized engine.
        ValueError: `requested` is not an internal name (parse it with `requested_precision`).
    """
    if requested == FP32:
        return Precision(FP32, "requested")
    if requested == BF16:
        if native_bf16(device):
            return Precision(BF16, "requested")
        return Precision(BF16, f"requested; {device.type} has no native bf16 (slower than fp32)")
    if requested == INT8:
        if cpu_int8(device):
            return Precision(INT8, "requested")
        raise ConfigError(f"dtype 'int8' runs on CPUs with a quantized engine, not on {device}")
    if requested != AUTO:
        raise ValueError(f"choose_precision takes one of {INFERENCE_PRECISIONS}, got {requested!r}")
    available = {INT8: cpu_int8(device), BF16: native_bf16(device)}
    if not any(available.values()):
        return Precision(FP32, f"{device.type} has no native bf16 or int8")
    reference = forward(pixels, FP32)
    refused = []
    for name in AUTO_ORDER:
        if not available[name]:
            continue
        candidate = forward(pixels, name)
        drift = (reference - candidate).abs().max().item()
        if not same_predictions(reference, candidate, task=task, threshold=threshold):
            refused.append(f"{name} changed predictions")
        elif name == INT8 and drift > MAX_INT8_DRIFT:
            refused.append(f"int8 moved a probability by {drift:.2f}")
        else:
            refusals = "".join(f"; {why} on the calibration images" for why in refused)
            kept = f"{name} keeps all predictions (max prob change {drift:.1e})"
            return Precision(name, kept + refusals)
    return Precision(FP32, "; ".join(refused) + " on the calibration images")
