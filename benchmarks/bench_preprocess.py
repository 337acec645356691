"""Decode + evaluation preprocessing: deitkit against PIL + transformers' AutoImageProcessor."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import torch
import transformers
from PIL import Image, ImageDraw
from transformers import AutoImageProcessor, DeiTConfig

from benchmarks.machine import (
    classifier_flops,
    describe,
    fraction_of_ceiling,
    header,
    write_results,
)
from deitkit.images import load_image
from deitkit.transforms import EvalTransform

N_IMAGES = 64
SIZE = (640, 480)
REPEATS = 7
# The model this preprocessing feeds: DeiT-base (DeiTConfig's defaults) at 224 px. Its forward
# FLOPs make the throughputs comparable with the machine's ceiling (see `main`).
MODEL = DeiTConfig(architectures=["DeiTForImageClassification"])
# facebook/deit-base-patch16-224's preprocessor_config.json.
DEIT_CONFIG = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "DeiTFeatureExtractor",
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 3,
    "size": 256,
}


def make_jpegs(folder: Path, count: int = N_IMAGES, seed: int = 0) -> list[Path]:
    """Write `count` photo-like JPEGs (gradient, shapes, sensor noise) of SIZE into `folder`."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for index in range(count):
        start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        angle = rng.uniform(0, np.pi)
        ramp = (x * np.cos(angle) + y * np.sin(angle)) / (width + height)
        pixels = start + (end - start) * ramp[..., None]
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(3, 9)):
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            x1, y1 = x0 + rng.uniform(20, 300), y0 + rng.uniform(20, 300)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x0, y0, x1, y1), fill=fill)
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 8, (height, width, 3))
        path = folder / f"image_{index:03d}.jpg"
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def best_time(
    run: Callable[[], torch.Tensor], repeats: int = REPEATS
) -> tuple[float, torch.Tensor]:
    """Best wall time of `repeats` runs after one warm-up, and the warm-up's output."""
    output = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), output


def _ratio(baseline_s: float, ours_s: float) -> str:
    if ours_s <= baseline_s:
        return f"ours is {baseline_s / ours_s:.1f}x faster"
    return f"ours is {ours_s / baseline_s:.1f}x slower"


def main() -> dict:
    """Time both pipelines on the same JPEGs, print a table, write the results; return them.

    Each throughput is also given "of ceiling": images/s times DeiT-base's forward FLOPs over
    the fp32 GEMM ceiling, i.e. how many images the preprocessing prepares in the time the
    model, at the ceiling, classifies one (above 1: the preprocessing keeps up).
    """
    machine = describe()
    print(header(machine))
    model_flops = classifier_flops(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_jpegs(folder)
        (folder / "preprocessor_config.json").write_text(json.dumps(DEIT_CONFIG))
        processor = AutoImageProcessor.from_pretrained(folder)
        transform = EvalTransform.from_pretrained(folder)
        decoded = [Image.open(path).convert("RGB") for path in paths]

        def baseline() -> torch.Tensor:
            images = [Image.open(path).convert("RGB") for path in paths]
            return processor(images, return_tensors="pt")["pixel_values"]

        def ours() -> torch.Tensor:
            images = [load_image(path, min_size=transform.min_size) for path in paths]
            return transform(images)

        def hf_only() -> torch.Tensor:
            return processor(decoded, return_tensors="pt")["pixel_values"]

        def ours_one_thread() -> torch.Tensor:
            # EvalTransform resizes on torch's thread count; one thread shows the gain that
            # does not come from parallelism (transformers' PIL backend is single-threaded).
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return transform(decoded)
            finally:
                torch.set_num_threads(threads)

        rows = {
            "decode+preprocess": (baseline, ours),
            "preprocess only": (hf_only, lambda: transform(decoded)),
            "preprocess, 1 thread": (hf_only, ours_one_thread),
        }
        results: dict = {
            "images": N_IMAGES,
            "image_size": list(SIZE),
            "repeats": REPEATS,
            "baseline": f"PIL open+convert, {type(processor).__name__}(return_tensors='pt')",
            "ours": "deitkit.images.load_image(min_size=transform.min_size), EvalTransform",
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "pillow": PIL.__version__,
            },
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "machine": machine,
            "model_flops_per_image": model_flops,
            "of_ceiling": "images/s x DeiT-base forward FLOPs / fp32 GEMM ceiling",
            "rows": {},
        }
        print(
            f"{N_IMAGES} JPEGs {SIZE[0]}x{SIZE[1]}, best of {REPEATS}, "
            f"{torch.get_num_threads()} torch threads"
        )
        print(
            f"{'stage':<20} {'baseline s':>10} {'img/s':>8} {'of ceil':>8} {'ours s':>8} "
            f"{'img/s':>8} {'of ceil':>8}  speed-up"
        )
        for name, (run_baseline, run_ours) in rows.items():
            base_s, base_out = best_time(run_baseline)
            ours_s, ours_out = best_time(run_ours)
            mad = (base_out - ours_out).abs().mean().item()
            base_rate, ours_rate = N_IMAGES / base_s, N_IMAGES / ours_s
            row = results["rows"][name] = {
                "baseline_s": base_s,
                "baseline_images_per_s": base_rate,
                "baseline_of_ceiling": fraction_of_ceiling(base_rate, model_flops, machine),
                "ours_s": ours_s,
                "ours_images_per_s": ours_rate,
                "ours_of_ceiling": fraction_of_ceiling(ours_rate, model_flops, machine),
                "speedup": base_s / ours_s,
                "mad": mad,
            }
            print(
                f"{name:<20} {base_s:>10.3f} {base_rate:>8.0f} {row['baseline_of_ceiling']:>7.0f}x "
                f"{ours_s:>8.3f} {ours_rate:>8.0f} {row['ours_of_ceiling']:>7.0f}x  "
                f"{_ratio(base_s, ours_s)} (MAD {mad:.2g})"
            )
    write_results("preprocess", machine, results)
    return results


if __name__ == "__main__":
    main()
