"""DeiT distillation on small data (issue 15): a convnet teacher's gain over no teacher, in points.

On a fixed 20% of the scikit-learn digits at 32 px (the first 360 scans, 36 per digit; the last
360 are the validation set), it trains a small ResNet teacher from random weights, then the same
distilled DeiT student from random weights for the same epochs, three seeds each, with
`--teacher` (hard distillation, alpha 0.5) and without, and prints the mean and spread of the
validation accuracy, the gain in points, and the seconds per step with and without the teacher.
Every run is `deitkit.training.run.finetune`, what `deitkit finetune` runs.

Minutes of CPU training (about 4 on 2 idle AVX2 cores), so not part of `make test`; `make bench`
(`python -m benchmarks`) runs it with the defaults, and on its own:
`python -m benchmarks.bench_distill [--epochs N] [--seeds N] [--keep DIR] [--distillation soft
--tau T] [--augment] [--mixup A]`. The figures go to benchmarks/results/<machine kind>/distill.json
and docs/finetune.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_train import WARMUP_STEPS, StepTimer
from benchmarks.machine import describe, header, write_results

SIZE = 32
TRAIN_SCANS = range(0, 360)  # 20% of the 1,797 scans; scikit-learn's order cycles the digits
VALIDATION_SCANS = range(1437, 1797)  # the last 20%: never trained on
# A small student at 32 px: 8 px patches (a 4x4 grid), 4 layers, 96 wide, and its
# distillation token.
STUDENT = (
    f"scratch:deit-tiny-distilled:image_size={SIZE},num_hidden_layers=4,hidden_size=96,"
    "num_attention_heads=3,intermediate_size=384"
)
# A two-stage basic-block ResNet (about 0.1M parameters): a convolution's locality is the
# inductive bias 360 images cannot teach a transformer.
TEACHER_SHAPE = {"embedding_size": 16, "hidden_sizes": [32, 64], "depths": [1, 1]}
TEACHER_EPOCHS = 30
STUDENT_EPOCHS = 30
SEEDS = (0, 1, 2)
# One evaluation and checkpoint, at the end: per-epoch ones took most of a run's time on 2 cores.
SAVE_STEPS = 10**6


def write_data(root: Path) -> tuple[Path, Path]:
    """The fixed training subset and validation set as class folders under `root`."""
    from deitkit.data.digits import write_digits

    every = write_digits(root / "all", size=SIZE)
    subsets = {"train": TRAIN_SCANS, "validation": VALIDATION_SCANS}
    for name, scans in subsets.items():
        wanted = {f"{i:04d}.png" for i in scans}
        for image in every.glob("*/*.png"):
            if image.name in wanted:
                target = root / name / image.parent.name / image.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(image, target)
    return root / "train", root / "validation"


def random_teacher(folder: Path, labels: list[str]) -> Path:
    """A random-initialised ResNet checkpoint with DeiT's preprocessing at SIZE."""
    from transformers import ResNetConfig, ResNetForImageClassification

    from deitkit.transforms import EvalTransform

    config = ResNetConfig(
        **TEACHER_SHAPE,
        layer_type="basic",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    ResNetForImageClassification(config).save_pretrained(folder)
    preprocessing = EvalTransform.for_image_size(SIZE).to_config()
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessing))
    return folder


def finetune(model: str, train: Path, validation: Path, out: Path, **options) -> dict:
    """One `deitkit finetune` run, its model saved but not packaged (the ONNX export would
    dominate the time); its metrics and the median seconds of its uninterrupted steps."""
    from deitkit.training.config import FinetuneConfig, resolve
    from deitkit.training.run import build
    from deitkit.training.run import train as run_train

    config = resolve(
        FinetuneConfig(
            model=model, train=str(train), validation=str(validation), output=str(out),
            precision="fp32", save_steps=SAVE_STEPS, **options,
        )
    )  # fmt: skip
    job = build(config)
    timer = StepTimer()
    job.trainer.add_callback(timer)
    start = time.perf_counter()
    metrics = run_train(job)
    job.tracker.finish()
    metrics["wall_seconds"] = time.perf_counter() - start
    job.trainer.save_model(str(out / "model"))  # a teacher's checkpoint
    (out / "model" / "preprocessor_config.json").write_text(json.dumps(job.transform.to_config()))
    steady = [s["seconds"] for s in timer.steps[WARMUP_STEPS:] if not s["interrupted"]]
    metrics["seconds_per_step"] = statistics.median(steady)
    return metrics


def _summary(runs: list[dict]) -> dict:
    accuracy = [run["eval_accuracy"] for run in runs]
    seconds_per_step = [run["seconds_per_step"] for run in runs]
    return {
        "accuracy": accuracy,
        "accuracy_mean": statistics.mean(accuracy),
        "accuracy_sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
        "seconds_per_step": statistics.mean(seconds_per_step),
    }


def run(
    root: Path,
    *,
    epochs: int,
    seeds: tuple[int, ...],
    teacher_epochs: int,
    student: dict | None = None,
    distillation: dict | None = None,
) -> dict:
    """Train the teacher, then the student with and without it per seed; the figures."""
    # One MLflow store for every run: a new one per run costs its schema migrations (5-10 s).
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    train, validation = write_data(root)
    labels = sorted(p.name for p in train.iterdir())
    teacher_start = random_teacher(root / "teacher-init", labels)
    # A convnet from random weights: the scratch recipe's rate and warmup, no weight decay.
    teacher_metrics = finetune(
        str(teacher_start), train, validation, root / "teacher",
        epochs=teacher_epochs, train_batch_size=16, learning_rate=1e-3, warmup_steps=50,
        weight_decay=0.0, augmentations=False, seed=0,
    )  # fmt: skip
    teacher = str(root / "teacher" / "model")
    print(f"teacher: accuracy {teacher_metrics['eval_accuracy']:.3f}", flush=True)
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    for seed in seeds:
        with_teacher = {"teacher": teacher, **(distillation or {})}
        for name, extra in (("without", {}), ("with", with_teacher)):
            metrics = finetune(
                STUDENT, train, validation, root / f"student-{name}-{seed}",
                epochs=epochs, seed=seed, **(student or {}), **extra,
            )  # fmt: skip
            runs[name].append(metrics)
            print(
                f"student {name} teacher, seed {seed}: accuracy {metrics['eval_accuracy']:.3f}, "
                f"{metrics['seconds_per_step']:.3f} s/step",
                flush=True,
            )
    without, with_teacher = _summary(runs["without"]), _summary(runs["with"])
    return {
        "data": f"digits at {SIZE} px: train scans {TRAIN_SCANS.start}-{TRAIN_SCANS.stop - 1}, "
        f"validation scans {VALIDATION_SCANS.start}-{VALIDATION_SCANS.stop - 1}",
        "teacher": {"shape": TEACHER_SHAPE, "epochs": teacher_epochs,
                    "eval_accuracy": teacher_metrics["eval_accuracy"],
                    "seconds_per_step": teacher_metrics["seconds_per_step"]},
        "student": STUDENT,
        "epochs": epochs,
        "seeds": list(seeds),
        "student_options": student or {},
        "distillation": {"distillation": "hard", "distillation_alpha": 0.5, **(distillation or {})},
        "without_teacher": without,
        "with_teacher": with_teacher,
        "gain_points": 100 * (with_teacher["accuracy_mean"] - without["accuracy_mean"]),
        "teacher_cost_per_step": with_teacher["seconds_per_step"] / without["seconds_per_step"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=STUDENT_EPOCHS)
    parser.add_argument("--teacher-epochs", type=int, default=TEACHER_EPOCHS)
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--keep", type=Path, help="Folder to write into and keep (new).")
    parser.add_argument("--distillation", choices=("hard", "soft"), default="hard")
    parser.add_argument("--tau", type=float, default=1.0, help="soft distillation's temperature")
    parser.add_argument(
        "--augment", action="store_true", help="students train with augmentations (both arms)"
    )
    parser.add_argument("--mixup", type=float, default=0.0, help="students' mixup alpha")
    args = parser.parse_args()
    machine = describe()
    print(header(machine), flush=True)
    options = dict(
        epochs=args.epochs,
        seeds=tuple(range(args.seeds)),
        teacher_epochs=args.teacher_epochs,
        student={"augmentations": args.augment, "mixup": args.mixup},
        distillation={"distillation": args.distillation, "distillation_tau": args.tau},
    )
    start = time.perf_counter()
    if args.keep:
        args.keep.mkdir(parents=True)
        figures = run(args.keep, **options)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            figures = run(Path(tmp), **options)
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    figures["machine"] = machine
    write_results("distill", machine, figures)
    w, t = figures["without_teacher"], figures["with_teacher"]
    print(
        f"without teacher: accuracy {w['accuracy_mean']:.3f} +- {w['accuracy_sd']:.3f}, "
        f"{w['seconds_per_step']:.3f} s/step\n"
        f"with teacher:    accuracy {t['accuracy_mean']:.3f} +- {t['accuracy_sd']:.3f}, "
        f"{t['seconds_per_step']:.3f} s/step\n"
        f"gain {figures['gain_points']:+.1f} points; the teacher costs "
        f"x{figures['teacher_cost_per_step']:.2f} per step; {figures['wall_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
