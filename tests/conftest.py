"""Shared fixtures: offline, CPU-only settings for every test."""

from __future__ import annotations

import os

# No test may reach a model hub or phone home; tiny random models are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}
TINY_SHAPE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 16,
    "patch_size": 4,
}


def _noisy_square(
    rng: np.random.Generator, colour: tuple[int, int, int], size: int = 20
) -> Image.Image:
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run where torch sees CUDA; elsewhere they are reported as skipped, with why."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (torch.cuda.is_available())")
    for item in gpu_tests:
        item.add_marker(skip)


@pytest.fixture
def colour_folders(tmp_path: Path) -> Path:
    """Class folders blue/green/red, 8 noisy solid-colour 20x20 PNGs each (multiclass)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "colours"
    for label, colour in COLOURS.items():
        (root / label).mkdir(parents=True)
        for i in range(8):
            _noisy_square(rng, colour).save(root / label / f"{i}.png")
    return root


@pytest.fixture
def colour_multilabel(tmp_path: Path) -> Path:
    """images/ + labels.csv: left and right halves coloured, labels = the colours present."""
    rng = np.random.default_rng(1)
    root = tmp_path / "multilabel"
    (root / "images").mkdir(parents=True)
    names = list(COLOURS)
    rows = ["filename,labels"]
    for i in range(24):
        left, right = names[i % 3], names[(i // 3) % 3]
        image = np.array(_noisy_square(rng, COLOURS[left]))
        image[:, 10:] = np.array(_noisy_square(rng, COLOURS[right]))[:, 10:]
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        rows.append(f"{i}.png,{' '.join(sorted({left, right}))}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def save_tiny_checkpoint(
    folder: Path, model_type: str = "deit", *, labels=None, distilled=False
) -> Path:
    """A random 2-layer, 32-wide checkpoint at 16 px with a preprocessor_config.json."""
    import transformers

    from deitkit.transforms import EvalTransform

    config = transformers.AutoConfig.for_model(model_type, **TINY_SHAPE)
    if labels:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    cls_name = {
        "deit": "DeiTForImageClassificationWithTeacher"
        if distilled
        else "DeiTForImageClassification",
        "vit": "ViTForImageClassification",
        "beit": "BeitForImageClassification",
    }[model_type]
    getattr(transformers, cls_name)(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(EvalTransform.for_image_size(16).to_config())
    )
    return folder


@pytest.fixture
def tiny_checkpoint(tmp_path: Path):
    """Factory: tiny_checkpoint("vit") → a folder with a random tiny ViT checkpoint."""

    def make(model_type: str = "deit", **kwargs) -> Path:
        return save_tiny_checkpoint(
            tmp_path / f"ckpt-{model_type}-{len(list(tmp_path.iterdir()))}", model_type, **kwargs
        )

    return make
