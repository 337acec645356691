"""Engine names: a backend (torch, ONNX Runtime) and a precision, written `backend-dtype`."""

from __future__ import annotations

from deitkit.precision import BF16, FP32, INT8

TORCH, ONNX = "torch", "onnx"
BACKENDS = (TORCH, ONNX)
DTYPES = (FP32, BF16, INT8)
TORCH_FP32, TORCH_BF16, TORCH_INT8 = "torch-fp32", "torch-bf16", "torch-int8"
ONNX_FP32, ONNX_INT8 = "onnx-fp32", "onnx-int8"
# Every engine deitkit runs; ONNX Runtime has no bf16 kernels worth running on CPUs.
ENGINES = (TORCH_FP32, TORCH_BF16, TORCH_INT8, ONNX_FP32, ONNX_INT8)
# What every other engine is measured against, at package time and in the export check.
REFERENCE = TORCH_FP32


def backend_of(name: str) -> str:
    """`torch` or `onnx` for an engine name."""
    return name.split("-", 1)[0]


def dtype_of(name: str) -> str:
    """`fp32`, `bf16` or `int8` for an engine name."""
    return name.split("-", 1)[1]
