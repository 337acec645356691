"""The resolved fine-tuning configuration: one frozen value, defaults per task and model, checks."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError
from deitkit.tasks import Task, parse_task

# Azure's learning_rate_scheduler names → transformers' lr_scheduler_type.
SCHEDULERS = {
    "warmup_linear": "linear",
    "warmup_cosine": "cosine",
    "warmup_cosine_with_restarts": "cosine_with_restarts",
    "warmup_polynomial": "polynomial",
    "warmup_constant": "constant_with_warmup",
    "constant": "constant",
}
# Azure's optimizer names → transformers' optim. Every AdamW runs as torch's fused kernel: the
# same update, one pass over all parameters (DeiT-tiny's step 14 -> 4 ms on 2 CPU cores).
OPTIMIZERS = {
    "adamw_torch": "adamw_torch_fused",
    "adamw_hf": "adamw_torch_fused",
    "adafactor": "adafactor",
    "sgd": "sgd",
    "adamw": "adamw_torch_fused",
}
PRECISIONS = ("auto", "32", "16", "bf16")
CLASS_WEIGHTS = ("none", "auto")
# Metrics the Trainer can select the best checkpoint by (`loss` is the Trainer's eval_loss).
BEST_MODEL_METRICS = {
    Task.MULTICLASS: (
        "loss",
        "accuracy",
        "f1_score_macro",
        "precision_score_macro",
        "recall_score_macro",
    ),
    Task.MULTILABEL: (
        "loss",
        "accuracy",
        "f1_score_macro",
        "precision_score_macro",
        "recall_score_macro",
        "iou",
        "iou_micro",
        "iou_macro",
        "iou_weighted",
    ),
}

# REFERENCE.md: Azure's pipeline defaults per model family (batch size, learning rate).
MODEL_DEFAULTS = {"deit": (60, 5e-5), "vit": (72, 5e-5), "beit": (72, 5e-5)}
FALLBACK_DEFAULTS = (32, 5e-5)


@dataclass(frozen=True)
class FinetuneConfig:
    """Every knob of a fine-tuning run; names follow Azure's pipeline inputs (see docs/finetune.md).

    Fields left as None are resolved by `resolve` from the task and the model family.
    """

    model: str
    train: str
    output: str
    task: Task
    validation: str | None = None
    image_size: int | None = None
    epochs: int = 15
    train_batch_size: int | None = None
    validation_batch_size: int | None = None
    learning_rate: float | None = None
    lr_scheduler: str = "warmup_cosine"
    warmup_steps: int = 0
    optimizer: str = "adamw_torch"
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    precision: str = "auto"
    label_smoothing: float = 0.0
    seed: int = 42
    max_grad_norm: float = 1.0
    metric_for_best_model: str | None = None
    early_stopping: bool = False
    early_stopping_patience: int = 1
    augmentations: bool = True
    rand_augment: bool = False
    mixup: float = 0.0
    cutmix: float = 0.0
    random_erasing: float = 0.0
    class_weights: str = "none"
    workers: int = 0
    apply_deepspeed: bool = False
    deepspeed_config: str | None = None
    apply_ort: bool = False
    resume: bool = True
    max_steps: int | None = None
    save_steps: int | None = None
    validation_fraction: float = 0.2

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v.value if isinstance(v, Task) else v) for k, v in dataclasses.asdict(self).items()
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def model_family(model_ref: str) -> str | None:
    """`deit`, `vit` or `beit` when the reference names one of those families, else None."""
    name = model_ref.lower().rsplit("/", 1)[-1].removeprefix("scratch:")
    return next((family for family in MODEL_DEFAULTS if name.startswith(family)), None)


def resolve(config: FinetuneConfig) -> FinetuneConfig:
    """Fill per-task and per-model defaults and check every combination before training starts."""
    task = parse_task(config.task)
    batch, lr = MODEL_DEFAULTS.get(model_family(config.model) or "", FALLBACK_DEFAULTS)
    resolved = dataclasses.replace(
        config,
        task=task,
        train_batch_size=config.train_batch_size or batch,
        validation_batch_size=config.validation_batch_size or config.train_batch_size or batch,
        learning_rate=config.learning_rate if config.learning_rate is not None else lr,
        metric_for_best_model=config.metric_for_best_model or task.primary_metric,
    )
    check(resolved)
    return resolved


def check(config: FinetuneConfig) -> None:
    """Raise ConfigError naming the flag for any invalid value or combination."""
    task = config.task
    if config.learning_rate is None or config.learning_rate <= 0:
        raise ConfigError(f"--learning-rate must be > 0, got {config.learning_rate}")
    for flag, value in (
        ("--epochs", config.epochs),
        ("--train-batch-size", config.train_batch_size),
        ("--validation-batch-size", config.validation_batch_size),
        ("--gradient-accumulation-steps", config.gradient_accumulation_steps),
        ("--early-stopping-patience", config.early_stopping_patience),
    ):
        if value is None or value < 1:
            raise ConfigError(f"{flag} must be a positive integer, got {value}")
    if config.warmup_steps < 0 or config.workers < 0:
        raise ConfigError("--warmup-steps and --workers must be >= 0")
    if config.weight_decay < 0 or config.max_grad_norm <= 0:
        raise ConfigError("--weight-decay must be >= 0 and --max-grad-norm > 0")
    if config.image_size is not None and config.image_size != -1 and config.image_size < 8:
        raise ConfigError(
            f"--image-size must be >= 8 (or -1 for the model's own), got {config.image_size}"
        )
    _check_choice("--lr-scheduler", config.lr_scheduler, SCHEDULERS)
    _check_choice("--optimizer", config.optimizer, OPTIMIZERS)
    _check_choice("--precision", config.precision, PRECISIONS)
    _check_choice("--class-weights", config.class_weights, CLASS_WEIGHTS)
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"--label-smoothing must be in [0, 1), got {config.label_smoothing}")
    if task.is_multilabel and config.label_smoothing > 0:
        raise ConfigError(
            "--label-smoothing applies to image-classification only; "
            "image-classification-multilabel trains with label smoothing 0 (as Azure ML does)"
        )
    allowed = BEST_MODEL_METRICS[task]
    if config.metric_for_best_model not in allowed:
        hint = (
            " (iou metrics exist only for image-classification-multilabel)"
            if (config.metric_for_best_model or "").startswith("iou")
            else ""
        )
        raise ConfigError(
            f"--metric-for-best-model {config.metric_for_best_model!r} is not available for "
            f"{task}{hint}; expected one of: {', '.join(allowed)}"
        )
    for flag, value in (("--mixup", config.mixup), ("--cutmix", config.cutmix)):
        if value < 0:
            raise ConfigError(f"{flag} (alpha) must be >= 0, got {value}")
    if not 0 <= config.random_erasing <= 1:
        raise ConfigError(
            f"--random-erasing is a probability in [0, 1], got {config.random_erasing}"
        )
    if not 0 < config.validation_fraction < 1:
        raise ConfigError(
            f"--validation-fraction must be in (0, 1), got {config.validation_fraction}"
        )
    if config.deepspeed_config and not Path(config.deepspeed_config).is_file():
        raise ConfigError(f"--deepspeed {config.deepspeed_config}: no such file")
    if config.max_steps is not None and config.max_steps < 1:
        raise ConfigError(f"--max-steps must be >= 1, got {config.max_steps}")


def _check_choice(flag: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{flag} {value!r} is not supported; expected one of: {', '.join(allowed)}"
        )
