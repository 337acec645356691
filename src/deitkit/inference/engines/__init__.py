"""Inference engines (torch and ONNX Runtime, fp32/bf16/int8), their record and the choice."""

from deitkit.inference.engines.base import Engine
from deitkit.inference.engines.choice import EngineChoice, choose_engine
from deitkit.inference.engines.names import (
    ENGINES,
    ONNX_FP32,
    ONNX_INT8,
    REFERENCE,
    TORCH_BF16,
    TORCH_FP32,
    TORCH_INT8,
)
from deitkit.inference.engines.offers import Offer, Offers, engine_offers
from deitkit.inference.engines.record import (
    RECORD_FILE,
    EngineRecord,
    Verdict,
    read_record,
    without_record,
    write_record,
)
from deitkit.inference.engines.requests import DTYPE_ENV, ENGINE_ENV, Request, requested
from deitkit.inference.engines.timing import Timer, time_engine

__all__ = [
    "DTYPE_ENV",
    "ENGINES",
    "ENGINE_ENV",
    "ONNX_FP32",
    "ONNX_INT8",
    "RECORD_FILE",
    "REFERENCE",
    "TORCH_BF16",
    "TORCH_FP32",
    "TORCH_INT8",
    "Engine",
    "EngineChoice",
    "EngineRecord",
    "Offer",
    "Offers",
    "Request",
    "Timer",
    "Verdict",
    "choose_engine",
    "engine_offers",
    "read_record",
    "requested",
    "time_engine",
    "without_record",
    "write_record",
]
