"""`--apply-ort` on this torch: ORTModule does not import, so training uses torch.compile."""

from __future__ import annotations

import json

import pytest

from deitkit.tasks import Task
from deitkit.training import accelerator
from deitkit.training.accelerator import resolve_accelerator
from deitkit.training.config import FinetuneConfig
from deitkit.training.run import finetune


def test_off_means_no_accelerator():
    chosen, module = resolve_accelerator(False)
    assert (chosen.name, module) == ("none", None)


def test_ortmodule_is_used_where_it_imports(monkeypatch):
    class FakeORTModule:
        pass

    monkeypatch.setattr(accelerator, "_import_ortmodule", lambda: FakeORTModule)
    chosen, module = resolve_accelerator(True)
    assert chosen.name == "ortmodule" and module is FakeORTModule


def test_import_failure_warns_once_and_falls_back(monkeypatch):
    def broken():
        raise ImportError("cannot import name 'jit_utils' from 'torch.onnx._internal'")

    monkeypatch.setattr(accelerator, "_import_ortmodule", broken)
    monkeypatch.setattr(accelerator, "_warned", False)
    with pytest.warns(RuntimeWarning, match="jit_utils"):
        chosen, module = resolve_accelerator(True)
    assert chosen.name == "torch.compile" and module is None
    assert "jit_utils" in chosen.reason
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_accelerator(True)  # second call: no second warning


@pytest.mark.slow
@pytest.mark.usefixtures("shared_mlflow_store")
def test_apply_ort_run_takes_the_fallback_and_records_it(
    tiny_checkpoint, colour_folders, tmp_path, monkeypatch
):
    monkeypatch.setattr(accelerator, "_warned", False)
    config = FinetuneConfig(model=str(tiny_checkpoint("deit")), train=str(colour_folders),
                            output=str(tmp_path / "out"), task=Task.MULTICLASS, epochs=1,
                            train_batch_size=8, augmentations=False, apply_ort=True)  # fmt: skip
    with pytest.warns(RuntimeWarning, match="ORTModule unavailable"):
        result = finetune(config)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["accelerator"] == result.metrics["accelerator"] == "torch.compile"
    assert metrics["train_loss"] > 0
