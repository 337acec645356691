"""Training precision `auto`: bf16 where the CPU or GPU has it natively, else fp32."""

from __future__ import annotations

import torch

from deitkit.errors import ConfigError
from deitkit.precision import Precision, cpu_supports_bf16


def resolve_precision(requested: str, *, cuda: bool | None = None) -> Precision:
    """Map `--precision` (auto, 32, 16, bf16) to what this machine can run.

    Azure's "16" means half precision on GPUs; on a CPU it becomes bf16 when supported,
    because fp16 autocast on CPUs is slow and unsupported by the Trainer.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    gpu_bf16 = cuda and torch.cuda.is_bf16_supported()
    if requested == "32":
        return Precision("fp32", "requested")
    if requested == "bf16":
        if (cuda and not gpu_bf16) or (not cuda and not cpu_supports_bf16()):
            raise ConfigError("--precision bf16: this machine has no bf16 support; use auto or 32")
        return Precision("bf16", "requested")
    if requested == "16":
        if cuda:
            return Precision("fp16", "requested")
        if cpu_supports_bf16():
            return Precision("bf16", "fp16 runs on GPUs only; this CPU has native bf16")
        return Precision("fp32", "fp16 runs on GPUs only and this CPU has no native bf16")
    if requested != "auto":
        raise ConfigError(f"--precision {requested!r}: expected auto, 32, 16 or bf16")
    if gpu_bf16:
        return Precision("bf16", "GPU supports bf16")
    if cuda:
        return Precision("fp16", "GPU without bf16")
    if cpu_supports_bf16():
        return Precision("bf16", "CPU has AMX/AVX512-BF16")
    return Precision("fp32", "CPU without native bf16")
