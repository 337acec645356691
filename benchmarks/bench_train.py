"""Training throughput and peak memory: `deitkit finetune` against a plain transformers Trainer."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from benchmarks.machine import (
    classifier_flops,
    describe,
    fraction_of_ceiling,
    header,
    write_results,
)

CLASSES = ("apple", "banana", "cherry")
TRAIN_PER_CLASS = 48
VALIDATION_PER_CLASS = 4
SIZE = (320, 240)
BATCH_SIZE = 16
EPOCHS = 2
LEARNING_RATE = 5e-5
# Steps 1..WARMUP_STEPS (allocator, kernel selection, first autocast casts) are not timed.
WARMUP_STEPS = 2
REPO = Path(__file__).resolve().parent.parent
# DeiT-tiny's shape (DeiT paper, table 1) at 224x224, patch 16.
MODEL_SHAPE = {
    "hidden_size": 192,
    "num_hidden_layers": 12,
    "num_attention_heads": 3,
    "intermediate_size": 768,
    "image_size": 224,
    "patch_size": 16,
}
# facebook/deit-base-patch16-224's preprocessor_config.json.
DEIT_PREPROCESSOR = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "image_processor_type": "DeiTImageProcessor",
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 3,
    "size": 256,
}
BASELINE_DATA_PATH = (
    "PIL open+convert('RGB') and AutoImageProcessor (resize 256, centre crop 224, normalise) "
    "per image in the Dataset; run_image_classification.py builds torchvision "
    "RandomResizedCrop+flip+Normalize from the processor instead, but torchvision has no CPU "
    "build here, so the processor call is the per-image data path"
)


class StepTimer(TrainerCallback):
    """Wall time per optimizer step, from one step's end to the next's.

    That covers everything a step costs: fetching and collating the batch, forward, backward,
    the optimizer and logging. A step after an evaluation or a save is flagged `interrupted`.
    """

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self._last = 0.0
        self._interrupted = False

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.steps.append(
            {
                "step": state.global_step,
                "epoch": int(np.ceil(state.epoch or 0)),
                "seconds": now - self._last,
                "interrupted": self._interrupted,
            }
        )
        self._last, self._interrupted = now, False

    def on_evaluate(self, args, state, control, **kwargs):
        self._interrupted = True

    def on_save(self, args, state, control, **kwargs):
        self._interrupted = True


def make_dataset(root: Path, per_class: int, seed: int) -> None:
    """Write `per_class` photo-like JPEGs per class into ROOT/<class>/ (class-tinted, seeded)."""
    rng = np.random.default_rng(seed)
    for label_index, label in enumerate(CLASSES):
        folder = root / label
        folder.mkdir(parents=True)
        tint = np.zeros(3)
        tint[label_index] = 60.0
        for index in range(per_class):
            _photo(rng, tint).save(folder / f"{label}_{index:03d}.jpg", quality=90)


def _photo(rng: np.random.Generator, tint: np.ndarray) -> Image.Image:
    """A gradient with a few shapes and sensor noise: compresses and decodes like a photo."""
    width, height = SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    start, end = rng.uniform(0, 195, 3) + tint, rng.uniform(0, 195, 3)
    angle = rng.uniform(0, np.pi)
    ramp = (x * np.cos(angle) + y * np.sin(angle)) / (width + height)
    image = Image.fromarray((start + (end - start) * ramp[..., None]).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        box = (x0, y0, x0 + rng.uniform(10, 150), y0 + rng.uniform(10, 150))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def make_checkpoint(folder: Path) -> None:
    """Save a random DeiT-tiny classifier for CLASSES with DeiT's preprocessor config."""
    torch.manual_seed(0)
    config = DeiTConfig(
        **MODEL_SHAPE,
        num_labels=len(CLASSES),
        id2label=dict(enumerate(CLASSES)),
        label2id={label: i for i, label in enumerate(CLASSES)},
    )
    DeiTForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(DEIT_PREPROCESSOR))


class FolderImages(torch.utils.data.Dataset):
    """run_image_classification.py's data path: each item opens its file and preprocesses it."""

    def __init__(self, root: Path, processor) -> None:
        self.items = [
            (path, label_id)
            for label_id, label in enumerate(CLASSES)
            for path in sorted((root / label).iterdir())
        ]
        self.processor = processor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, label_id = self.items[index]
        image = Image.open(path).convert("RGB")
        pixel_values = self.processor(image, return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixel_values, "labels": label_id}


def run_baseline(data: Path, model_dir: Path, out: Path, timer: StepTimer) -> dict:
    """A plain Trainer: fp32, default arguments, the default collator, the model's own loss."""
    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=BATCH_SIZE,
        num_train_epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=FolderImages(data / "train", processor),
        callbacks=[timer],
    )
    metrics = trainer.train().metrics
    return {"precision": "fp32", "train_samples_per_second": metrics["train_samples_per_second"]}


def run_ours(data: Path, model_dir: Path, out: Path, timer: StepTimer) -> dict:
    """`deitkit finetune` with its defaults (augmentations on, precision auto, decode cache)."""
    # Imported here so that the baseline's process, and its peak RSS, never load deitkit.
    from deitkit.tasks import Task
    from deitkit.training.config import FinetuneConfig
    from deitkit.training.run import finetune

    # finetune() builds its own Trainer (a subclass); the timer joins whichever it builds.
    trainer_init = Trainer.__init__

    def timed_init(self, *args, **kwargs):
        trainer_init(self, *args, **kwargs)
        self.add_callback(timer)

    Trainer.__init__ = timed_init
    steps = EPOCHS * len(CLASSES) * TRAIN_PER_CLASS // BATCH_SIZE
    config = FinetuneConfig(
        model=str(model_dir),
        train=str(data / "train"),
        validation=str(data / "validation"),
        output=str(out),
        task=Task.MULTICLASS,
        epochs=EPOCHS,
        train_batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        # Evaluate and save once, after the last step, as the baseline (which never does).
        save_steps=steps,
    )
    metrics = finetune(config).metrics
    return {
        "precision": metrics["precision"],
        "train_samples_per_second": metrics["train_samples_per_second"],
    }


SIDES = {"baseline": run_baseline, "ours": run_ours}


def side_main(side: str, workspace: Path) -> None:
    """Train one side in this process; write its timings and peak RSS to WORKSPACE/<side>.json."""
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        summary = SIDES[side](workspace / "data", workspace / "model", Path(tmp) / "out", timer)
    timed = [s for s in timer.steps if s["step"] > WARMUP_STEPS and not s["interrupted"]]
    summary.update(
        samples_per_s=_rate(timed),
        # Other jobs on a shared machine stall single steps; the median step ignores those.
        median_step_samples_per_s=BATCH_SIZE / float(np.median([s["seconds"] for s in timed])),
        # Epoch 1 is where deitkit decodes into its cache; later epochs read the cache.
        first_epoch_samples_per_s=_rate([s for s in timed if s["epoch"] <= 1]),
        later_epochs_samples_per_s=_rate([s for s in timed if s["epoch"] > 1]),
        timed_steps=len(timed),
        step_seconds=[round(s["seconds"], 4) for s in timer.steps],
        # Linux reports ru_maxrss in KiB.
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        torch_threads=torch.get_num_threads(),
    )
    (workspace / f"{side}.json").write_text(json.dumps(summary, indent=2) + "\n")


def _rate(steps: list[dict]) -> float | None:
    seconds = sum(s["seconds"] for s in steps)
    return BATCH_SIZE * len(steps) / seconds if steps else None


def _run_side(side: str, workspace: Path) -> dict:
    """Train `side` in a fresh interpreter, so its peak RSS is its own."""
    command = [sys.executable, "-m", "benchmarks.bench_train", side, str(workspace)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} side failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads((workspace / f"{side}.json").read_text())


def main() -> dict:
    """Train both sides in their own processes, print a table, write the results; return them.

    Each side's samples/s is also given "of ceiling": samples/s times a training step's FLOPs
    per sample (forward and backward) over the fp32 GEMM ceiling.
    """
    machine = describe()
    print(header(machine))
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        make_dataset(workspace / "data" / "train", TRAIN_PER_CLASS, seed=0)
        make_dataset(workspace / "data" / "validation", VALIDATION_PER_CLASS, seed=1)
        make_checkpoint(workspace / "model")
        step_flops = classifier_flops(AutoConfig.from_pretrained(workspace / "model"), train=True)
        load = os.getloadavg()[0]
        sides = {side: _run_side(side, workspace) for side in SIDES}
    for row in sides.values():
        row["of_ceiling"] = fraction_of_ceiling(row["samples_per_s"], step_flops, machine)
        row["median_step_of_ceiling"] = fraction_of_ceiling(
            row["median_step_samples_per_s"], step_flops, machine
        )
    ours, baseline = sides["ours"], sides["baseline"]
    results = {
        "model": {"type": "deit", **MODEL_SHAPE, "num_labels": len(CLASSES)},
        "train_images": len(CLASSES) * TRAIN_PER_CLASS,
        "validation_images": len(CLASSES) * VALIDATION_PER_CLASS,
        "image_size": list(SIZE),
        "batch_size": BATCH_SIZE,
        "epochs": EPOCHS,
        "measure": f"samples/s over optimizer steps {WARMUP_STEPS + 1}.., step end to step end",
        "baseline": "transformers.Trainer, fp32, default TrainingArguments and collator, the "
        f"model's loss; {BASELINE_DATA_PATH}",
        "ours": "deitkit.training.run.finetune: decode cache, kornia batch augmentation, "
        "precision auto",
        "sides": sides,
        "speedup": ours["samples_per_s"] / baseline["samples_per_s"],
        "median_step_speedup": (
            ours["median_step_samples_per_s"] / baseline["median_step_samples_per_s"]
        ),
        "target_speedup": 1.5,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "cpus": os.cpu_count(),
        "machine": machine,
        "flops_per_sample": step_flops,
        "of_ceiling": "samples/s x training FLOPs per sample (forward+backward) / fp32 GEMM "
        "ceiling",
        # Both sides inherit these; OpenMP's wait policy matters a lot on a busy machine.
        "environment": {
            name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
        },
        "load_average_before": load,
    }
    _print_table(results)
    write_results("train", machine, results)
    return results


def _print_table(results: dict) -> None:
    print(
        f"{results['train_images']} JPEGs {SIZE[0]}x{SIZE[1]}, DeiT-tiny 224/16, "
        f"batch {BATCH_SIZE}, {EPOCHS} epochs, steps {WARMUP_STEPS + 1}.. timed, "
        f"{results['cpus']} CPUs (load average {results['load_average_before']:.1f})"
    )
    print(f"baseline data path: {BASELINE_DATA_PATH}")
    print(
        f"{'side':<9} {'precision':<9} {'samples/s':>9} {'of ceil':>7} {'epoch 1':>8} {'later':>8} "
        f"{'median step':>11} {'Trainer s/s':>11} {'peak RSS MB':>11}"
    )
    for side, row in results["sides"].items():
        print(
            f"{side:<9} {row['precision']:<9} {row['samples_per_s']:>9.1f} "
            f"{row['of_ceiling']:>7.0%} "
            f"{row['first_epoch_samples_per_s']:>8.1f} {row['later_epochs_samples_per_s']:>8.1f} "
            f"{row['median_step_samples_per_s']:>11.1f} {row['train_samples_per_second']:>11.1f} "
            f"{row['peak_rss_mb']:>11.0f}"
        )
    print(
        f"deitkit is {results['speedup']:.1f}x the baseline (target 1.5x); "
        f"{results['median_step_speedup']:.1f}x by median step time"
    )


if __name__ == "__main__":
    # `python -m benchmarks.bench_train SIDE WORKSPACE` is one side's worker process.
    if len(sys.argv) == 3:
        side_main(sys.argv[1], Path(sys.argv[2]))
    else:
        main()
