"""GPU smoke test: fine-tune, package and serve a tiny DeiT on CUDA (skipped without a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from deitkit.inference import load_classifier
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig
from deitkit.training.run import finetune

pytestmark = pytest.mark.gpu


def test_finetune_in_half_precision_then_serve_on_cuda(tiny_checkpoint, colour_folders, tmp_path):
    out = tmp_path / "run"
    result = finetune(
        FinetuneConfig(
            model=str(tiny_checkpoint("deit")),
            train=str(colour_folders),
            output=str(out),
            task=Task.MULTICLASS,
            epochs=2,
            train_batch_size=8,
            learning_rate=1e-3,
        )
    )
    metrics = json.loads((out / "metrics.json").read_text())
    # `auto` on a GPU trains in bf16 (Ampere and later) or fp16, never fp32.
    assert metrics["precision"] in ("bf16", "fp16")
    assert np.isfinite(metrics["train_loss"])

    images = [Image.open(p).convert("RGB") for p in sorted(colour_folders.rglob("*.png"))]
    on_gpu = load_classifier(result.mlflow_model_dir, device="cuda")
    on_cpu = load_classifier(result.mlflow_model_dir, device="cpu", dtype="fp32")
    assert on_gpu.device.type == "cuda"
    gpu_probs, cpu_probs = on_gpu.predict_images(images), on_cpu.predict_images(images)
    np.testing.assert_allclose(gpu_probs.sum(axis=1), 1.0, atol=1e-3)
    # Whatever precision `auto` kept on the GPU, it picks the labels fp32 picks on the CPU.
    assert (gpu_probs.argmax(axis=1) == cpu_probs.argmax(axis=1)).all()
