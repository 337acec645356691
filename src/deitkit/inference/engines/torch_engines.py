"""torch engines: the loaded model in fp32, under bf16 autocast, or quantized to int8 by torchao."""

from __future__ import annotations

import copy
import functools
import importlib.util
import time

import torch

from deitkit.inference.engines.base import Engine
from deitkit.inference.engines.names import TORCH_BF16, TORCH_FP32, TORCH_INT8
from deitkit.precision import BF16

# The int8 matmul probe: (M, K) x (K, N) the size of a small Linear on a few tokens.
_PROBE_SHAPE = (64, 512, 512)
_PROBE_RUNS = 3


class TorchEngine(Engine):
    """The model as transformers built it: fp32, or fp32 weights under bf16 autocast.

    Args:
        name: `torch-fp32` or `torch-bf16`.
        model: The fp32 model (shared, never modified).
    """

    def __init__(self, name: str, model: torch.nn.Module):
        if name not in (TORCH_FP32, TORCH_BF16):
            raise ValueError(f"TorchEngine runs torch-fp32 or torch-bf16, not {name!r}")
        self.name = name
        self.model = model.eval()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.dtype == BF16),
        ):
            return self.model(pixel_values=pixels.to(device)).logits.float().cpu()


class TorchInt8Engine(Engine):
    """A copy of the model whose Linear layers run int8 x int8 (torchao, dynamic activations).

    Weights are quantized once per output channel; activations per row (per token) on every
    call, so an image's scales come from its own tokens only and its answer does not depend on
    the other images of the batch (tests/test_inference_engines.py checks it).
    """

    def __init__(self, model: torch.nn.Module):
        # Imported here: torchao is only needed where this engine runs, and importing it
        # loads its kernels (and logs about the CUDA-only ones on CPUs).
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        self.name = TORCH_INT8
        self.model = copy.deepcopy(model).eval()
        quantize_(self.model, Int8DynamicActivationInt8WeightConfig())

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model(pixel_values=pixels.to(device)).logits.float().cpu()


def torchao_available() -> bool:
    """True where torchao is installed (its int8 quantization is torch's maintained int8 path)."""
    return importlib.util.find_spec("torchao") is not None


@functools.cache
def int8_matmul_speedup() -> float:
    """How many times faster torch's int8 matmul (`torch._int_mm`) is than fp32 on this CPU.

    torchao's int8 Linear calls it; where this torch build has only a reference kernel for it
    (AVX2 CPUs: about 12x slower than fp32 on this project's 2-core machine) a quantized model
    runs many times slower than fp32, so torch-int8 is not offered there. Measured once per
    process on a 64x512x512 product (after one untimed run of each): tens of milliseconds.
    """
    m, k, n = _PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    a8 = torch.randint(-128, 128, (m, k), dtype=torch.int8, generator=generator)
    b8 = torch.randint(-128, 128, (k, n), dtype=torch.int8, generator=generator)
    a32, b32 = a8.float(), b8.float()
    try:
        int8 = _best_seconds(lambda: torch._int_mm(a8, b8))
    except RuntimeError:  # no int8 matmul on this build
        return 0.0
    return _best_seconds(lambda: torch.mm(a32, b32)) / int8


def _best_seconds(run) -> float:
    run()  # the first call pays for thread start-up and allocations
    best = float("inf")
    for _ in range(_PROBE_RUNS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)
