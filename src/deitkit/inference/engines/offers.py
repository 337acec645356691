"""Which engines this machine can run for a model folder, each built only when it is used."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from deitkit.inference.engines.base import Engine
from deitkit.inference.engines.names import (
    ONNX_FP32,
    ONNX_INT8,
    TORCH_BF16,
    TORCH_FP32,
    TORCH_INT8,
)
from deitkit.inference.engines.onnx_engines import FILES, OnnxEngine, onnxruntime_available
from deitkit.inference.engines.torch_engines import (
    TorchEngine,
    TorchInt8Engine,
    int8_matmul_speedup,
    torchao_available,
)
from deitkit.precision import cpu_supports_bf16


@dataclass(frozen=True)
class Offer:
    """An engine this machine can run.

    Attributes:
        name: The engine.
        build: Makes it (quantizing a copy, opening an ONNX Runtime session: seconds for
            DeiT-base), so only the engines that are timed or served are built.
        slow: Empty, or why the engine runs slower than fp32 here (bf16 emulated, a reference
            int8 kernel); such an engine is neither timed nor served unless asked for.
    """

    name: str
    build: Callable[[], Engine]
    slow: str = ""


@dataclass(frozen=True)
class Offers:
    """The engines one model can run on this machine, and why each other engine cannot."""

    offers: dict[str, Offer]
    missing: dict[str, str]


def engine_offers(
    model: torch.nn.Module, folder: str | Path, *, device: torch.device, threads: int
) -> Offers:
    """What runs here: torch engines over `model`, ONNX engines over the folder's exports.

    Args:
        model: The loaded fp32 model.
        folder: The checkpoint folder, where `deitkit package` puts the ONNX files.
        device: Where `model` is; ONNX Runtime and torch-int8 run on CPUs only.
        threads: Intra-op threads for ONNX Runtime, the number torch uses.
    """
    folder = Path(folder)
    offers = {
        TORCH_FP32: Offer(TORCH_FP32, lambda: TorchEngine(TORCH_FP32, model)),
        TORCH_BF16: Offer(TORCH_BF16, lambda: TorchEngine(TORCH_BF16, model), _bf16_slow(device)),
    }
    missing: dict[str, str] = {}
    if device.type != "cpu":
        missing[TORCH_INT8] = f"runs on CPUs, not on {device.type}"
    elif not torchao_available():
        missing[TORCH_INT8] = "torchao is not installed"
    else:
        offers[TORCH_INT8] = Offer(TORCH_INT8, lambda: TorchInt8Engine(model), _int8_slow())
    for name in (ONNX_FP32, ONNX_INT8):
        path = folder / FILES[name]
        if device.type != "cpu":
            missing[name] = f"runs on CPUs, not on {device.type}"
        elif not path.is_file():
            missing[name] = f"the model has no {FILES[name]} (deitkit package exports it)"
        elif not onnxruntime_available():
            missing[name] = "onnxruntime is not installed (the serving extra)"
        else:
            offers[name] = Offer(name, _onnx_builder(name, path, threads))
    return Offers(offers, missing)


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix maths is native: AMX/AVX512-BF16 CPUs, Ampere and later GPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_supports_bf16()


def _bf16_slow(device: torch.device) -> str:
    if native_bf16(device):
        return ""
    return f"bf16 is not native on this {device.type} (emulated: slower than fp32)"


def _int8_slow() -> str:
    speedup = int8_matmul_speedup()
    if speedup >= 1.0:
        return ""
    if speedup <= 0.0:
        return "this torch build has no int8 matmul on this CPU"
    return f"torch's int8 matmul is {1 / speedup:.0f}x slower than fp32 on this CPU"


def _onnx_builder(name: str, path: Path, threads: int) -> Callable[[], Engine]:
    return lambda: OnnxEngine(name, path, threads=threads)
