"""Acceptance check of the from-scratch defaults (issue 13, item 9): does a `scratch:` model learn
the multilabel digits with no option but its size?

Writes the multilabel digits sample as `deitkit data sample digits-multilabel` does (1,000
images, 64 px), runs

    deitkit finetune --model scratch:deit-tiny --image-size 64 \\
        --task image-classification-multilabel --train SAMPLE --output OUT

in a child process, and reports its wall time and validation iou; exit status 1 when the iou is
under 0.6. Minutes of CPU training, so not part of `make test` or `python -m benchmarks`:
`python -m benchmarks.scratch_multilabel [--keep DIR]`. The figures go to
benchmarks/results/<machine kind>/scratch_multilabel.json and docs/finetune.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe, header, write_results

MIN_IOU = 0.6
COMMAND = ["--model", "scratch:deit-tiny", "--image-size", "64",
           "--task", "image-classification-multilabel"]  # fmt: skip


def run(root: Path) -> dict:
    """Write the sample under `root`, fine-tune on it, and return the figures."""
    from deitkit.data.digits import write_digits_multilabel

    sample = write_digits_multilabel(root / "digits-multilabel")
    out = root / "finetune"
    argv = [sys.executable, "-m", "deitkit.cli.main", "finetune", *COMMAND,
            "--train", str(sample), "--output", str(out)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"deitkit finetune failed ({done.returncode}):\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "finetune_config.json").read_text())
    return {
        "command": "deitkit finetune " + " ".join(COMMAND) + " --train SAMPLE --output OUT",
        "wall_seconds": round(seconds, 1),
        "eval_iou": metrics["eval_iou"],
        "eval_f1_score_macro": metrics["eval_f1_score_macro"],
        "train_loss": metrics["train_loss"],
        "train_runtime": metrics["train_runtime"],
        "precision": metrics["precision"],
        "resolved": {k: config[k] for k in ("epochs", "train_batch_size", "learning_rate",
                                            "warmup_steps", "weight_decay", "augmentations")},
        "n_train": metrics["n_train"],
        "n_validation": metrics["n_validation"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Folder to write into and keep (new).")
    args = parser.parse_args()
    machine = describe()
    print(header(machine))
    if args.keep:
        args.keep.mkdir(parents=True)
        figures = run(args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            figures = run(Path(tmp))
    figures["machine"] = machine
    write_results("scratch_multilabel", machine, figures)
    print(json.dumps(figures, indent=2))
    if figures["eval_iou"] < MIN_IOU:
        raise SystemExit(f"eval_iou {figures['eval_iou']:.3f} < {MIN_IOU}")


if __name__ == "__main__":
    main()
