"""Shared fixtures: offline, CPU-only settings for every test."""

from __future__ import annotations

import os

# No test may reach a model hub or phone home; tiny random models are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# One intra-op thread: the tests' tiny models gain nothing from a second one, and on 2 cores
# shared with the servers, kernels and training ranks the tests start (or with another job),
# torch's pool waits for a busy core at every op (tests/test_training_run.py under load:
# 272 s and 130 CPU-s with two threads, 162 s and 76 CPU-s with one). Children inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Packages skip the ONNX export (4-10 s each here) except in the tests of the export and of
# what it enables (tests/test_inference_engines.py, tests/test_engine_decision.py turn it on).
os.environ.setdefault("DEITKIT_ONNX_EXPORT", "off")

from pathlib import Path

import pytest
from helpers import save_tiny_checkpoint, write_colour_folders, write_colour_multilabel


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
def shared_mlflow_store(tmp_path_factory, monkeypatch) -> str:
    """MLFLOW_TRACKING_URI of one SQLite store for the session; child processes inherit it.

    A new store runs MLflow's schema migrations first (5-10 s on 2 cores); runs whose tests do
    not look at OUT's own store log here instead (tests/test_training_run.py checks that one).
    """
    uri = f"sqlite:///{tmp_path_factory.getbasetemp() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def colour_folders(tmp_path: Path) -> Path:
    """Class folders blue/green/red, 8 noisy solid-colour 20x20 PNGs each (multiclass)."""
    return write_colour_folders(tmp_path / "colours")


@pytest.fixture
def colour_multilabel(tmp_path: Path) -> Path:
    """images/ + labels.csv: left and right halves coloured, labels = the colours present."""
    return write_colour_multilabel(tmp_path / "multilabel")


@pytest.fixture
def tiny_checkpoint(tmp_path: Path):
    """Factory: tiny_checkpoint("vit") → a folder with a random tiny ViT checkpoint."""

    def make(model_type: str = "deit", **kwargs) -> Path:
        return save_tiny_checkpoint(
            tmp_path / f"ckpt-{model_type}-{len(list(tmp_path.iterdir()))}", model_type, **kwargs
        )

    return make


@pytest.fixture(scope="session")
def judged_package(tmp_path_factory) -> tuple[Path, Path]:
    """(package, validation data): a tiny DeiT packaged with its ONNX export, its engines judged
    on the colour folders (torch-int8 too, as where torch's int8 kernels are fast).

    Session-wide: the export costs 5-15 s here, so the engine tests share this one.
    """
    import deitkit.inference.engines.offers as offers_module
    from deitkit.packaging import package_model

    root = tmp_path_factory.mktemp("judged")
    checkpoint = save_tiny_checkpoint(
        root / "ckpt", labels=["blue", "green", "red"], weight_std=0.3
    )
    data = write_colour_folders(root / "colours")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEITKIT_ONNX_EXPORT", "on")
        patch.setattr(offers_module, "int8_matmul_speedup", lambda: 2.0)
        package = package_model(checkpoint, root / "package", validation=data)
    return package, data
