"""Package time: the fp32 model exported to ONNX, checked against torch, and a dynamic-int8 copy."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import torch

from deitkit.errors import ConfigError
from deitkit.inference.engines.names import ONNX_FP32, ONNX_INT8
from deitkit.inference.engines.onnx_engines import (
    FILES,
    INPUT_NAME,
    OUTPUT_NAME,
    OnnxEngine,
)
from deitkit.inference.engines.pixels import fixed_pixels
from deitkit.tasks import Task

log = logging.getLogger(__name__)

# `off` skips the export: the package then serves with torch engines only (faster packaging,
# ~1.25x the weights' size less disk; the test suite uses it where the export is not tested).
EXPORT_ENV = "DEITKIT_ONNX_EXPORT"
# The export ships only if ONNX Runtime's logits and probabilities stay this close to torch's.
MAX_EXPORT_DIFF = 1e-4
# The check's batch differs from the export's example batch, so it proves the dynamic axis.
_EXAMPLE_BATCH, _CHECK_BATCH = 2, 4
_OPSET = 18


class _Logits(torch.nn.Module):
    """The classifier as a graph from pixel_values to logits (no ModelOutput dataclass)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def export_enabled() -> bool:
    """False when `$DEITKIT_ONNX_EXPORT` is `off`.

    Raises:
        ConfigError: the variable is neither `on` nor `off`.
    """
    value = os.environ.get(EXPORT_ENV, "").strip().lower()
    if value not in ("", "on", "off"):
        raise ConfigError(f"{EXPORT_ENV} {value!r} is not supported; expected one of: on, off")
    return value != "off"


def export_onnx(
    model: torch.nn.Module, folder: Path, *, normalize, size: tuple[int, int], task: Task
) -> dict[str, dict[str, Any]]:
    """Write `folder/model.onnx` and `folder/model.int8.onnx` when the export checks out.

    The fp32 graph has a dynamic batch axis; on fixed pixels its logits and probabilities must
    stay within MAX_EXPORT_DIFF of torch's, else neither file is kept. The int8 copy is ONNX
    Runtime's dynamic quantization of it (int8 weights, activations quantized per call); it is
    judged on the validation set like every reduced-precision engine.

    Args:
        model: The fp32 model on the CPU.
        folder: The package's checkpoint folder.
        normalize: The model's pixel normalisation (`EvalTransform.normalize`).
        size: The model's input (height, width).
        task: Turns logits into probabilities for the check.

    Returns:
        Per ONNX engine, `shipped` and `reason` (and the check's differences): the record's
        `export` section.
    """
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if not export_enabled():
        why = f"{EXPORT_ENV}=off"
    elif missing:
        why = f"{' and '.join(missing)} not installed (the serving extra)"
    else:
        why = ""
    if why:
        # Turning it off is a choice; a missing package is worth a warning.
        return _not_shipped(why, logging.WARNING if missing else logging.INFO)
    fp32_path, int8_path = folder / FILES[ONNX_FP32], folder / FILES[ONNX_INT8]
    model = model.eval()
    try:
        _export(model, fp32_path, size)
        report = _check(model, fp32_path, normalize(fixed_pixels(_CHECK_BATCH, *size)), task)
    except Exception as err:  # the exporter raises many kinds; any of them means no ONNX
        fp32_path.unlink(missing_ok=True)
        return _not_shipped(f"the export failed: {_one_line(err)}", logging.WARNING)
    if not report["shipped"]:
        fp32_path.unlink()
        return {ONNX_FP32: report, ONNX_INT8: {"shipped": False, "reason": report["reason"]}}
    try:
        _quantize(fp32_path, int8_path)
        int8 = {"shipped": True, "reason": "dynamic int8 of model.onnx (onnxruntime)"}
    except Exception as err:
        int8_path.unlink(missing_ok=True)
        int8 = {"shipped": False, "reason": f"quantization failed: {_one_line(err)}"}
        log.warning("%s: not shipping %s: %s", folder, FILES[ONNX_INT8], int8["reason"])
    return {ONNX_FP32: report, ONNX_INT8: int8}


def _export(model: torch.nn.Module, path: Path, size: tuple[int, int]) -> None:
    example = torch.zeros(_EXAMPLE_BATCH, 3, *size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # torch.onnx's registry warns that torchvision's detection ops are missing: none is used.
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        torch.onnx.export(
            _Logits(model).eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=_OPSET,
            dynamo=True,
            external_data=False,  # one file; DeiT-base's 344 MB is far under protobuf's 2 GB
            verbose=False,
        )
    finally:
        quiet.setLevel(level)


def _quantize(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization: int8 weights, activations scaled per call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The exporter's intermediate shape annotations use its own symbolic batch names, which the
    # quantizer's shape inference rejects ("Inferred shape and existing shape differ"); without
    # them it infers every shape afresh.
    graph = onnx.load(str(source))
    del graph.graph.value_info[:]
    bare = target.with_name(f".{target.name}.bare")
    try:
        onnx.save(graph, str(bare))
        quantize_dynamic(bare, target, weight_type=QuantType.QInt8)
    finally:
        bare.unlink(missing_ok=True)


def _check(model: torch.nn.Module, path: Path, pixels: torch.Tensor, task: Task) -> dict:
    with torch.inference_mode():
        expected = model(pixel_values=pixels).logits.float()
    logits = OnnxEngine(ONNX_FP32, path, threads=torch.get_num_threads())(pixels)
    logit_diff = (logits - expected).abs().max().item()
    prob_diff = (task.activate(logits) - task.activate(expected)).abs().max().item()
    figures = {"max_abs_logit_diff": logit_diff, "max_abs_prob_diff": prob_diff}
    worst = max(logit_diff, prob_diff)
    if worst > MAX_EXPORT_DIFF:
        reason = f"onnxruntime differs from torch by {worst:.1e} (over {MAX_EXPORT_DIFF:g})"
        log.warning("%s: not shipping the ONNX export: %s", path.parent, reason)
        return {"shipped": False, "reason": reason, **figures}
    reason = f"matches torch to {worst:.1e} on {len(pixels)} fixed images"
    return {"shipped": True, "reason": reason, **figures}


def _not_shipped(why: str, level: int) -> dict[str, dict[str, Any]]:
    log.log(level, "no ONNX export in the package: %s", why)
    return {name: {"shipped": False, "reason": why} for name in (ONNX_FP32, ONNX_INT8)}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}"
