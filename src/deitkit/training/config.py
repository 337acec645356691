"""The resolved fine-tuning configuration: one frozen value, defaults per task and model, checks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError
from deitkit.precision import AUTO, BF16, FP16, FP32
from deitkit.tasks import Task, parse_task
from deitkit.tuning import check_tuning
from deitkit.workdir import write_text_atomically

# deitkit.models.SCRATCH_PREFIX, not imported: models pulls in transformers, and `deitkit --help`
# imports this module to build the finetune options.
SCRATCH_PREFIX = "scratch:"
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
# Inside training, precision has the internal names; the CLI maps Azure's "32"/"16" onto them.
PRECISIONS = (AUTO, FP32, FP16, BF16)
CLASS_WEIGHTS = ("none", "auto")
# DeiT's two distillation losses (training/distillation.py); the paper found hard better.
DISTILLATIONS = ("hard", "soft")
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
# Fine-tuning pretrained weights: Azure's pipeline defaults for the knobs that do not depend on
# the model family.
PRETRAINED_DEFAULTS: dict[str, Any] = {
    "epochs": 15,
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "augmentations": True,
}
# Training random weights (`scratch:` models; docs/finetune.md has the measurements). At the
# fine-tuning defaults a random ViT stays at the label prior (iou 0.0 on the multilabel digits,
# issue 13). The quickstart's warmup, weight decay and no augmentation (flips and small crops
# change what a digit is; a crop cuts labelled digits out of a multilabel image); a lower peak
# rate and smaller batches than its 6-layer model's 1e-3 and 32, which left the 12-layer
# DeiT-tiny at the prior for hundreds of steps.
SCRATCH_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "train_batch_size": 16,
    "learning_rate": 3e-4,
    "warmup_steps": 100,
    "weight_decay": 0.05,
    "augmentations": False,
}


def _option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    choices: Iterable[str] | None = None,
    show_default: str | None = None,
) -> Any:
    """A field that carries its `deitkit finetune` option (cli/finetune.py builds it from these).

    Args:
        default: The one default of the field, the flag and (checked by `assets validate`) the
            Azure component input; None where `resolve` fills it in.
        help: The option's help text.
        flag: The flag, where it is not `--field-name`.
        choices: The values the flag takes, where it is a choice.
        show_default: What `--help` shows as the default where the field's is None.
    """
    metadata = {
        "help": help,
        "flag": flag,
        "choices": tuple(choices) if choices is not None else None,
        "show_default": show_default,
    }
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class FinetuneConfig:
    """Every knob of a fine-tuning run; names follow Azure's pipeline inputs (see docs/finetune.md).

    Fields left as None are resolved by `resolve` from the task and the model: its family, and
    whether it starts from pretrained or random (`scratch:`) weights. Each
    field's metadata (`_option`) is its `deitkit finetune` option: help text, flag, choices;
    boolean fields become switches that also take true/false, as Azure ML passes them.
    """

    model: str = _option(
        help="Hub id, local checkpoint or MLflow model folder (Azure's catalog model too), or "
        "scratch:<arch>."
    )
    train: str = _option(help="Training data (any layout `deitkit data validate` reads).")
    output: str = _option(help="Output folder (re-running resumes from it).")
    task: Task = _option(  # noqa: RUF009 (a dataclasses.field, like every _option)
        Task.MULTICLASS,
        help="One label per image, or any number (multilabel).",
        choices=[t.value for t in Task],
    )
    validation: str | None = _option(
        None, help="Validation data (default: a seeded split, see --validation-fraction)."
    )
    # Hugging Face datasets only (docs/data.md): None detects the Image and ClassLabel columns.
    image_column: str | None = _option(
        None, help="Image column of a Hugging Face dataset.", show_default="detected"
    )
    label_column: str | None = _option(
        None, help="Label column of a Hugging Face dataset.", show_default="detected"
    )
    image_size: int | None = _option(
        None,
        help="Square input size; -1 = the model's own; another size resizes a checkpoint to it.",
        show_default="the checkpoint's own; 224 for scratch models",
    )
    epochs: int | None = _option(None, help="Training epochs.", show_default="15; scratch: 30")
    train_batch_size: int | None = _option(
        None,
        help="Per-device training batch size.",
        show_default="60 DeiT, 72 ViT/BEiT, else 32; scratch: 16",
    )
    validation_batch_size: int | None = _option(
        None, help="Per-device validation batch size.", show_default="--train-batch-size"
    )
    learning_rate: float | None = _option(
        None, help="Peak learning rate.", show_default="5e-5; scratch: 3e-4"
    )
    lr_scheduler: str = _option(
        "warmup_cosine", help="Learning rate schedule after the warmup.", choices=SCHEDULERS
    )
    warmup_steps: int | None = _option(
        None, help="Optimizer steps of linear warmup from 0.", show_default="0; scratch: 100"
    )
    optimizer: str = _option(
        "adamw_torch", help="The AdamW names all run torch's fused AdamW.", choices=OPTIMIZERS
    )
    weight_decay: float | None = _option(
        None, help="Weight decay (not on biases and LayerNorm).", show_default="0; scratch: 0.05"
    )
    gradient_accumulation_steps: int = _option(
        1, help="Batches whose gradients are summed before each optimizer step."
    )
    precision: str = _option(
        AUTO,
        help="auto: bf16 where the CPU or GPU has it, fp16 on older GPUs, else fp32. "
        "Azure's 32 and 16 mean fp32 and fp16.",
        choices=PRECISIONS,
    )
    label_smoothing: float = _option(0.0, help="In [0, 1); image-classification only.")
    seed: int = _option(42, help="Seeds weights, data order, augmentation and the split.")
    max_grad_norm: float = _option(1.0, help="Gradient clipping norm.")
    metric_for_best_model: str | None = _option(
        None,
        help="Metric that picks the best checkpoint.",
        show_default="accuracy for multiclass, iou for multilabel",
    )
    early_stopping: bool = _option(False, help="Stop when the metric stops improving.")
    early_stopping_patience: int = _option(
        1, help="Evaluations without improvement before early stopping."
    )
    augmentations: bool | None = _option(
        None, help="RandomResizedCrop, flip and colour jitter.", show_default="on; scratch: off"
    )
    rand_augment: bool = _option(False, help="RandAugment (n=2, m=9).")
    mixup: float = _option(0.0, help="Mixup alpha (0 = off).")
    cutmix: float = _option(0.0, help="CutMix alpha (0 = off).")
    random_erasing: float = _option(0.0, help="Random erasing probability (0 = off).")
    class_weights: str = _option(
        "none",
        help="auto: balanced class weights (multiclass), BCE pos_weight (multilabel).",
        choices=CLASS_WEIGHTS,
    )
    workers: int = _option(0, help="DataLoader workers.")
    apply_deepspeed: bool = _option(False, help="DeepSpeed with the shipped ZeRO stage 1 config.")
    deepspeed_config: str | None = _option(
        None, help="Your DeepSpeed JSON config.", flag="--deepspeed"
    )
    apply_ort: bool = _option(False, help="ORTModule where available, else torch.compile.")
    resume: bool = _option(True, help="Continue from the last complete checkpoint in --output.")
    max_steps: int | None = _option(None, help="Stop after this many optimizer steps.")
    save_steps: int | None = _option(None, help="Evaluate and checkpoint every N steps.")
    validation_fraction: float = _option(
        0.2, help="Share of --train held out when no --validation is given."
    )
    teacher: str | None = _option(
        None,
        help="Distil from this model (anything --model takes; its labels must be the data's). "
        "A deit-*-distilled student trains its distillation head on it.",
    )
    distillation: str = _option(
        "hard",
        help="hard: the teacher's decision as a label; soft: its probabilities at "
        "--distillation-tau.",
        choices=DISTILLATIONS,
    )
    distillation_alpha: float = _option(
        0.5, help="Weight of the distillation term in [0, 1]; the label term gets 1 - alpha."
    )
    distillation_tau: float = _option(
        1.0, help="Temperature of soft distillation (> 0; the DeiT paper used 3)."
    )
    tune_thresholds: bool = _option(
        False,
        help="Multilabel: choose each label's threshold for its best F1 on the validation set "
        "and package the model with them.",
    )
    calibrate: bool = _option(
        False, help="Fit temperature scaling on the validation set and package it with the model."
    )

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v.value if isinstance(v, Task) else v) for k, v in dataclasses.asdict(self).items()
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path) -> None:
        """Write `to_json()` to `path`; another process never reads half of it."""
        write_text_atomically(path, self.to_json())


def model_family(model_ref: str) -> str | None:
    """`deit`, `vit` or `beit` when the reference names one of those families, else None."""
    name = model_ref.lower().rsplit("/", 1)[-1].removeprefix(SCRATCH_PREFIX)
    return next((family for family in MODEL_DEFAULTS if name.startswith(family)), None)


def model_defaults(model_ref: str) -> dict[str, Any]:
    """The defaults of the fields left None for this model: from-scratch or fine-tuning ones."""
    if model_ref.startswith(SCRATCH_PREFIX):
        return dict(SCRATCH_DEFAULTS)
    batch, lr = MODEL_DEFAULTS.get(model_family(model_ref) or "", FALLBACK_DEFAULTS)
    return {**PRETRAINED_DEFAULTS, "train_batch_size": batch, "learning_rate": lr}


def resolve(config: FinetuneConfig) -> FinetuneConfig:
    """Fill per-task and per-model defaults and check every combination before training starts.

    A value given (not None) always stays; only the fields left None take the defaults.
    """
    task = parse_task(config.task)
    defaults = model_defaults(config.model)
    filled = {k: v for k, v in defaults.items() if getattr(config, k) is None}
    resolved = dataclasses.replace(config, task=task, **filled)
    resolved = dataclasses.replace(
        resolved,
        validation_batch_size=config.validation_batch_size or resolved.train_batch_size,
        metric_for_best_model=config.metric_for_best_model or task.primary_metric,
    )
    check(resolved)
    return resolved


def check(config: FinetuneConfig) -> None:
    """Raise ConfigError naming the flag for any invalid value or combination."""
    task = config.task
    check_tuning(task, tune_thresholds=config.tune_thresholds)
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
    if config.warmup_steps is None or config.warmup_steps < 0 or config.workers < 0:
        raise ConfigError("--warmup-steps and --workers must be >= 0")
    if config.weight_decay is None or config.weight_decay < 0 or config.max_grad_norm <= 0:
        raise ConfigError("--weight-decay must be >= 0 and --max-grad-norm > 0")
    if config.image_size is not None and config.image_size != -1 and config.image_size < 8:
        raise ConfigError(
            f"--image-size must be >= 8 (or -1 for the model's own), got {config.image_size}"
        )
    _check_choice("--lr-scheduler", config.lr_scheduler, SCHEDULERS)
    _check_choice("--optimizer", config.optimizer, OPTIMIZERS)
    # The one check of the precision name: resolve_precision trusts it, and the CLI only maps
    # Azure's "32"/"16" onto these names.
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
    _check_distillation(config)


def _check_distillation(config: FinetuneConfig) -> None:
    _check_choice("--distillation", config.distillation, DISTILLATIONS)
    if config.distillation == "soft" and not config.teacher:
        raise ConfigError(
            "--distillation soft needs --teacher: the teacher's probabilities are its targets"
        )
    if not 0 <= config.distillation_alpha <= 1:
        raise ConfigError(
            f"--distillation-alpha must be in [0, 1], got {config.distillation_alpha}"
        )
    if not config.distillation_tau > 0:
        raise ConfigError(f"--distillation-tau must be > 0, got {config.distillation_tau}")


def _check_choice(flag: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{flag} {value!r} is not supported; expected one of: {', '.join(allowed)}"
        )
