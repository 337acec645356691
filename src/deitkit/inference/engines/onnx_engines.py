"""ONNX Runtime engines: the model exported at package time, in fp32 or dynamic int8, on CPUs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from deitkit.inference.engines.base import Engine
from deitkit.inference.engines.names import ONNX_FP32, ONNX_INT8

# The package's exported files, inside its checkpoint folder, and the graph's input and output.
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
FILES = {ONNX_FP32: ONNX_FILE, ONNX_INT8: ONNX_INT8_FILE}
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"


def onnxruntime_available() -> bool:
    """True where ONNX Runtime is installed (the `serving` extra installs it)."""
    return importlib.util.find_spec("onnxruntime") is not None


class OnnxEngine(Engine):
    """An `onnxruntime.InferenceSession` on the CPU provider over one exported file.

    Args:
        name: `onnx-fp32` or `onnx-int8`.
        path: The .onnx file.
        threads: Intra-op threads, as `deitkit.inference.threads` gives torch.
    """

    def __init__(self, name: str, path: str | Path, *, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # One graph, run op after op: a second pool would only compete for the same cores.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        self.name = name
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(logits).float()
