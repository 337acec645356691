"""The Trainer's TrainingArguments from a resolved FinetuneConfig; names map one to one."""

from __future__ import annotations

import torch
from transformers import TrainingArguments

from deitkit.precision import Precision
from deitkit.training.accelerator import Accelerator
from deitkit.training.checkpoints import CHECKPOINTS_DIR
from deitkit.training.config import OPTIMIZERS, SCHEDULERS, FinetuneConfig
from deitkit.training.deepspeed import deepspeed_config


def training_arguments(
    config: FinetuneConfig, *, n_train: int, precision: Precision, accelerator: Accelerator
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
