"""Training precision `auto`: bf16 where the CPU or GPU has it natively, else fp32."""

from __future__ import annotations

import torch

from deitkit.errors import ConfigError
from deitkit.precision import BF16, FP16, FP32, Precision, cpu_supports_bf16


def resolve_precision(requested: str, *, cuda: bool | None = None) -> Precision:
    """Map a checked `FinetuneConfig.precision` (auto, fp32, fp16, bf16) to what this machine runs.

    fp16 (Azure's "16") means half precision on GPUs; on a CPU it becomes bf16 when supported,
    because fp16 autocast on CPUs is slow and unsupported by the Trainer. The name is checked
    once, by `config.check`, so whatever is not fp32, bf16 or fp16 here is `auto`.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    gpu_bf16 = cuda and torch.cuda.is_bf16_supported()
    if requested == FP32:
        return Precision(FP32, "requested")
    if requested == BF16:
        if (cuda and not gpu_bf16) or (not cuda and not cpu_supports_bf16()):
            raise ConfigError("--precision bf16: this machine has no bf16 support; use auto or 32")
        return Precision(BF16, "requested")
    if requested == FP16:
        if cuda:
            return Precision(FP16, "requested")
        if cpu_supports_bf16():
            return Precision(BF16, "fp16 runs on GPUs only; this CPU has native bf16")
        return Precision(FP32, "fp16 runs on GPUs only and this CPU has no native bf16")
    if gpu_bf16:
        return Precision(BF16, "GPU supports bf16")
    if cuda:
        return Precision(FP16, "GPU without bf16")
    if cpu_supports_bf16():
        return Precision(BF16, "CPU has AMX/AVX512-BF16")
    return Precision(FP32, "CPU without native bf16")
