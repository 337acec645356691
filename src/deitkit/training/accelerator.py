"""`--apply-ort`: ONNX Runtime's ORTModule where it imports, else torch.compile, never a crash."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

log = logging.getLogger(__name__)

_warned = False


@dataclass(frozen=True)
class Accelerator:
    """The training accelerator taken: `ortmodule`, `torch.compile` or `none`, and why."""

    name: str
    reason: str


def _import_ortmodule():
    from onnxruntime.training.ortmodule import ORTModule  # removed upstream; may not exist

    return ORTModule


def resolve_accelerator(apply_ort: bool) -> tuple[Accelerator, type | None]:
    """Which accelerator `--apply-ort` gives on this machine, and ORTModule when it imports.

    onnxruntime-training's ORTModule is gone upstream and its last release fails to import with
    current torch; Azure's catalog defaults to apply_ort 'true', so that must degrade, not fail.
    """
    global _warned
    if not apply_ort:
        return Accelerator("none", "--apply-ort not set"), None
    try:
        return Accelerator("ortmodule", "onnxruntime-training ORTModule"), _import_ortmodule()
    except Exception as err:  # ImportError, or the ImportError-in-disguise torch gives it
        reason = f"ORTModule unavailable ({type(err).__name__}: {err}); using torch.compile"
        if not _warned:
            warnings.warn(f"--apply-ort: {reason}", RuntimeWarning, stacklevel=2)
            _warned = True
        log.warning("--apply-ort: %s", reason)
        return Accelerator("torch.compile", reason), None
