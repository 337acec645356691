"""`deitkit finetune`: data → model → Hugging Face Trainer → metrics, checkpoints, saved model."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, TrainingArguments
from transformers.trainer_callback import ProgressCallback
from transformers.utils import cached_file

from deitkit.data.dataset import ImageDataset
from deitkit.data.validate import check_compatible, validate_dataset
from deitkit.errors import ConfigError, DataError
from deitkit.metrics import compute_metrics
from deitkit.models import load_model, parse_model_ref
from deitkit.packaging import package_model
from deitkit.tasks import Task
from deitkit.training.accelerator import resolve_accelerator
from deitkit.training.augment import AugmentConfig, EvalCrop, TrainAugment
from deitkit.training.checkpoints import (
    CHECKPOINTS_DIR,
    CheckpointTrainer,
    MarkCompleteCallback,
    check_same_labels,
    last_complete_checkpoint,
)
from deitkit.training.config import OPTIMIZERS, SCHEDULERS, FinetuneConfig, resolve
from deitkit.training.data import BatchCollator, DecodedImages, split_validation
from deitkit.training.deepspeed import deepspeed_config, skip_cpu_inference_comm_build
from deitkit.training.loss import TaskLoss, auto_class_weights
from deitkit.training.precision import resolve_precision
from deitkit.training.progress import EpochSummary, QuietProgress
from deitkit.training.tracking import MlflowTracker
from deitkit.transforms import CONFIG_NAME, EvalTransform

log = logging.getLogger(__name__)

MODEL_DIR = "model"  # the fine-tuned Hugging Face checkpoint (Azure's pytorch_model_folder)
MLFLOW_MODEL_DIR = "mlflow_model"  # the packaged model (Azure's mlflow_model_folder)
METRICS_FILE = "metrics.json"
CONFIG_FILE = "finetune_config.json"


@dataclass(frozen=True)
class FinetuneResult:
    """Where a finished run put its outputs, and its metrics."""

    output_dir: Path
    model_dir: Path
    mlflow_model_dir: Path
    metrics: dict[str, Any]


def load_data(config: FinetuneConfig) -> tuple[ImageDataset, ImageDataset]:
    """Read and check the training and validation data (split seeded when none is given)."""
    train = _checked(config.train, config.task, "--train")
    if config.validation:
        validation = _checked(config.validation, config.task, "--validation")
        check_compatible(train, validation)
    else:
        train, validation = split_validation(
            train, fraction=config.validation_fraction, seed=config.seed
        )
    if len(train) == 0 or len(validation) == 0:
        raise DataError(
            f"no images left for {'training' if not train else 'validation'}", path=config.train
        )
    return train, validation


def _checked(path: str, task: Task, flag: str) -> ImageDataset:
    report = validate_dataset(path, task=task)
    if not report.ok:
        errors = [str(p) for p in report.problems if p.severity == "error"]
        raise DataError(f"{flag} failed validation: " + "; ".join(errors[:5]), path=path)
    if len(report.dataset) == 0:
        raise DataError(f"{flag} has no images", path=path)
    return report.dataset


def eval_transform_for(config: FinetuneConfig) -> EvalTransform:
    """The checkpoint's own preprocessing, or DeiT's recipe at --image-size for scratch models."""
    source = parse_model_ref(config.model)
    if source.kind == "scratch":
        return EvalTransform.for_image_size(config.image_size or 224)
    if source.kind == "local":
        if (Path(source.ref) / CONFIG_NAME).is_file():
            return EvalTransform.from_pretrained(source.ref)
        raise ConfigError(f"--model {config.model}: the checkpoint has no {CONFIG_NAME}")
    return EvalTransform.from_pretrained(cached_file(source.ref, CONFIG_NAME))


def _metrics_fn(task: Task, labels: tuple[str, ...]):
    def compute(eval_pred) -> dict[str, float]:
        logits = torch.from_numpy(np.asarray(eval_pred.predictions, dtype=np.float32))
        probs = torch.sigmoid(logits) if task.is_multilabel else torch.softmax(logits, dim=-1)
        return compute_metrics(task, probs.numpy(), np.asarray(eval_pred.label_ids), labels=labels)

    return compute


def training_arguments(
    config: FinetuneConfig, *, n_train: int, precision, accelerator
) -> TrainingArguments:
    """TrainingArguments from the resolved config; names map one to one (docs/finetune.md)."""
    cuda = torch.cuda.is_available()
    save = (
        {"save_strategy": "steps", "save_steps": config.save_steps}
        if config.save_steps
        else {"save_strategy": "epoch"}
    )
    evaluation = (
        {"eval_strategy": "steps", "eval_steps": config.save_steps}
        if config.save_steps
        else {"eval_strategy": "epoch"}
    )
    steps_per_epoch = max(
        1, n_train // (config.train_batch_size * config.gradient_accumulation_steps)
    )
    return TrainingArguments(
        output_dir=str(config.output_dir / CHECKPOINTS_DIR),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.train_batch_size,
        per_device_eval_batch_size=config.validation_batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type=SCHEDULERS[config.lr_scheduler],
        warmup_steps=config.warmup_steps,
        optim=OPTIMIZERS[config.optimizer],
        weight_decay=config.weight_decay,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        bf16=precision.bf16,
        fp16=precision.fp16,
        use_cpu=not cuda,
        torch_compile=accelerator.name == "torch.compile",
        deepspeed=deepspeed_config(
            apply_deepspeed=config.apply_deepspeed, user_file=config.deepspeed_config
        ),
        metric_for_best_model=config.metric_for_best_model,
        greater_is_better=config.metric_for_best_model != "loss",
        load_best_model_at_end=True,
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=max(1, min(50, steps_per_epoch // 4)),
        report_to=[],
        # TaskLoss returns a per-batch mean; the Trainer must not rescale it by the world size.
        average_tokens_across_devices=False,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=config.workers,
        dataloader_persistent_workers=config.workers > 0,
        disable_tqdm=False,
        **save,
        **evaluation,
    )


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Run (or resume) a fine-tuning job and write OUT as DESIGN.md describes."""
    config = resolve(config)
    out = config.output_dir
    train_data, validation_data = load_data(config)
    labels = train_data.labels
    if not config.resume and out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"--output {out} is not empty and --no-resume was given; use a new folder"
        )
    check_same_labels(out, labels, config.task)
    config.save(out / CONFIG_FILE)

    transform = eval_transform_for(config)
    model = load_model(
        config.model, labels=labels, task=config.task, image_size=transform.output_size[0]
    )
    precision = resolve_precision(config.precision)
    if precision.bf16 and not torch.cuda.is_available():
        # torch's CPU SDPA kernel is slower than eager attention in bf16 at ViT sizes: 0.42 ->
        # 0.30 s per DeiT-tiny step (benchmarks/bench_train.py). Not written to config.json,
        # so the saved model still serves with SDPA.
        model.set_attn_implementation("eager")
    accelerator, ort_module = resolve_accelerator(config.apply_ort)
    if ort_module is not None:
        model = ort_module(model)
    log.info(
        "precision %s (%s); accelerator %s", precision.name, precision.reason, accelerator.name
    )

    label2id = {label: i for i, label in enumerate(labels)}
    train_set = DecodedImages(train_data, label2id=label2id, transform=transform, train=True)
    eval_set = DecodedImages(validation_data, label2id=label2id, transform=transform, train=False)
    augment = AugmentConfig(
        enabled=config.augmentations,
        rand_augment=config.rand_augment,
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        random_erasing=config.random_erasing,
    )
    collator = BatchCollator(
        TrainAugment(
            augment,
            output_size=transform.output_size,
            mean=transform.mean,
            std=transform.std,
            num_labels=len(labels),
            multilabel=config.task.is_multilabel,
        ),
        EvalCrop(output_size=transform.output_size, mean=transform.mean, std=transform.std),
    )
    weights = auto_class_weights(train_data) if config.class_weights == "auto" else None
    args = training_arguments(
        config, n_train=len(train_set), precision=precision, accelerator=accelerator
    )
    if args.deepspeed:
        skip_cpu_inference_comm_build()
    tracker = MlflowTracker(
        out,
        {**config.to_dict(), "precision_resolved": precision.name, "accelerator": accelerator.name},
    )
    callbacks = [MarkCompleteCallback(), EpochSummary(config.metric_for_best_model), tracker]
    if config.early_stopping:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)
        )
    trainer = CheckpointTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=eval_set,
        compute_loss_func=TaskLoss(
            config.task, label_smoothing=config.label_smoothing, class_weights=weights
        ),
        compute_metrics=_metrics_fn(config.task, labels),
        callbacks=callbacks,
    )
    # TaskLoss is a per-batch mean, so gradient accumulation must divide it (the Trainer assumes a
    # compute_loss_func normalised by num_items_in_batch otherwise).
    trainer.loss_is_scaled_for_ga = False
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(QuietProgress())
    resume_from = last_complete_checkpoint(out / CHECKPOINTS_DIR) if config.resume else None
    if resume_from:
        log.info("resuming from %s", resume_from)
    try:
        train_output = trainer.train(
            resume_from_checkpoint=str(resume_from) if resume_from else None
        )
        eval_metrics = trainer.evaluate()
    except BaseException:
        tracker.finish("FAILED")
        raise
    model_dir = out / MODEL_DIR
    metrics = {
        **train_output.metrics,
        **eval_metrics,
        "accelerator": accelerator.name,
        "precision": precision.name,
        "resumed_from": str(resume_from) if resume_from else None,
        "n_train": len(train_set),
        "n_validation": len(eval_set),
    }
    # Every rank calls save_model: under ZeRO-3 it gathers the shards; only rank 0 writes.
    trainer.save_model(str(model_dir))
    if trainer.is_world_process_zero():
        (model_dir / CONFIG_NAME).write_text(json.dumps(transform.to_config(), indent=2) + "\n")
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        package_model(model_dir, out / MLFLOW_MODEL_DIR, overwrite=True)
        tracker.log_artifacts([out / METRICS_FILE, out / CONFIG_FILE])
    tracker.finish()
    return FinetuneResult(out, model_dir, out / MLFLOW_MODEL_DIR, metrics)


def is_distributed() -> bool:
    """True under torchrun (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
