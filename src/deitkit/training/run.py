"""`deitkit finetune`: data → model → Hugging Face Trainer → metrics, checkpoints, saved model."""

from __future__ import annotations

import functools
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, TrainerCallback, set_seed

from deitkit.data.dataset import ImageDataset
from deitkit.data.hf_source import TRAIN_SPLITS, VALIDATION_SPLITS, HfOptions
from deitkit.data.validate import check_compatible, validate_dataset
from deitkit.errors import ConfigError, DataError
from deitkit.inference.checkpoint import HISTORY_FILE
from deitkit.metrics import compute_metrics
from deitkit.models import has_distillation_token, load_model, model_transform
from deitkit.packaging import DISTILLATION_FILE, package_model
from deitkit.precision import Precision
from deitkit.progress import plain_logs
from deitkit.tasks import Task
from deitkit.training.accelerator import Accelerator, resolve_accelerator
from deitkit.training.arguments import training_arguments
from deitkit.training.augment import AugmentConfig, EvalCrop, TrainAugment
from deitkit.training.checkpoints import (
    CHECKPOINTS_DIR,
    LABELS_FILE,
    CheckpointTrainer,
    MarkCompleteCallback,
    check_same_labels,
    checkpoint_step,
    last_complete_checkpoint,
    recorded_train_seconds,
)
from deitkit.training.config import FinetuneConfig, resolve
from deitkit.training.data import BatchCollator, DecodedImages, split_validation
from deitkit.training.deepspeed import skip_cpu_inference_comm_build
from deitkit.training.distillation import (
    DistillationLoss,
    DistillationTrainer,
    distillation_record,
    served_logits,
)
from deitkit.training.loss import TaskLoss, auto_class_weights
from deitkit.training.model_card import write_model_card
from deitkit.training.outputs import (
    CONFIG_FILE,
    EVALUATION_DIR,
    METRICS_FILE,
    MLFLOW_MODEL_DIR,
    MODEL_DIR,
    RUN_ID_KEY,
    SERVED_PREFIX,
    check_overwrite_allowed,
    clear_run,
    finished_by_this_job,
    is_finished,
    refuse_finished,
    saved_metrics,
)
from deitkit.training.precision import resolve_precision
from deitkit.training.progress import EpochSummary, use_bars
from deitkit.training.teacher import Teacher, load_teacher
from deitkit.training.tracking import MlflowTracker
from deitkit.training.whole_run import LogAtSave, samples_per_step, whole_run_metrics
from deitkit.transforms import CONFIG_NAME, EvalTransform
from deitkit.workdir import is_staging, write_text_atomically

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    """Where a finished run put its outputs, and its metrics."""

    output_dir: Path
    model_dir: Path
    mlflow_model_dir: Path
    metrics: dict[str, Any]


def load_data(config: FinetuneConfig) -> tuple[ImageDataset, ImageDataset]:
    """Read and check the training and validation data (split seeded when none is given)."""
    train = _checked(config, config.train, "--train", TRAIN_SPLITS)
    if config.validation:
        validation = _checked(config, config.validation, "--validation", VALIDATION_SPLITS)
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


def _checked(config: FinetuneConfig, path: str, flag: str, splits: tuple[str, ...]) -> ImageDataset:
    hf = HfOptions(config.image_column, config.label_column, splits)
    report = validate_dataset(path, task=config.task, hf=hf)
    if not report.ok:
        errors = [str(p) for p in report.problems if p.severity == "error"]
        raise DataError(f"{flag} failed validation: " + "; ".join(errors[:5]), path=path)
    if len(report.dataset) == 0:
        raise DataError(f"{flag} has no images", path=path)
    return report.dataset


def _metrics_fn(task: Task, labels: tuple[str, ...]):
    def compute(eval_pred) -> dict[str, float]:
        logits = torch.from_numpy(np.asarray(eval_pred.predictions, dtype=np.float32))
        probs = task.activate(logits)
        return compute_metrics(task, probs.numpy(), np.asarray(eval_pred.label_ids), labels=labels)

    return compute


def finetune(config: FinetuneConfig, *, overwrite: bool = False) -> FinetuneResult:
    """Run (or resume) a fine-tuning job and write OUT as DESIGN.md describes.

    Args:
        config: The run's configuration (resolved here).
        overwrite: Start over: what a previous run left in OUT, finished or not, is removed
            (once every check has passed) before this run writes anything.

    Raises:
        ConfigError: OUT holds a finished run and `overwrite` is False (nothing is written),
            or any invalid option.
    """
    config = resolve(config)
    out = config.output_dir
    if is_finished(out) and not overwrite:
        if finished_by_this_job(out):
            # A retried Azure ML job whose training had finished: its outputs stand as they are.
            log.info("%s holds this job's finished run; nothing to do", out)
            return FinetuneResult(out, out / MODEL_DIR, out / MLFLOW_MODEL_DIR, saved_metrics(out))
        refuse_finished(out)
    if overwrite:
        check_overwrite_allowed()
    job = build(config, overwrite=overwrite)
    metrics = train(job)
    return save(job, metrics)


@dataclass(frozen=True)
class Job:
    """A fine-tuning run ready to train: its Trainer, its tracker and what the outputs record."""

    config: FinetuneConfig
    trainer: CheckpointTrainer
    tracker: MlflowTracker
    transform: EvalTransform
    precision: Precision
    accelerator: Accelerator
    validation: ImageDataset | None = None  # judges the packaged model's engines


def build(config: FinetuneConfig, *, overwrite: bool = False) -> Job:
    """Check the data and OUT, save the config, and set up model, data, arguments and Trainer.

    Args:
        config: The resolved configuration.
        overwrite: Clear a previous run from OUT first (`finetune`).
    """
    plain_logs()  # outside a terminal: no carriage-return bars from transformers or the Hub
    train_data, validation_data = load_data(config)
    labels = train_data.labels
    # The preprocessing the model trains and serves with, at --image-size where one is given;
    # refuses a model deitkit cannot read, or a size it cannot take, before OUT is touched.
    transform = model_transform(config.model, config.image_size)
    teacher = (
        load_teacher(config.teacher, labels=labels, task=config.task, student=transform)
        if config.teacher
        else None
    )
    model, precision, accelerator = _build_model(config, labels, transform)
    _prepare_output(config, labels, overwrite=overwrite)
    label2id = {label: i for i, label in enumerate(labels)}
    train_set = DecodedImages(train_data, label2id=label2id, transform=transform, train=True)
    eval_set = DecodedImages(validation_data, label2id=label2id, transform=transform, train=False)
    collator = _collator(config, transform, num_labels=len(labels))
    weights = auto_class_weights(train_data) if config.class_weights == "auto" else None
    args = training_arguments(
        config, n_train=len(train_set), precision=precision, accelerator=accelerator
    )
    if args.deepspeed:
        skip_cpu_inference_comm_build()
    tracker = MlflowTracker(
        config.output_dir,
        {**config.to_dict(), "precision": precision.name, "accelerator": accelerator.name},
    )
    task_loss = TaskLoss(config.task, label_smoothing=config.label_smoothing, class_weights=weights)
    trainer = _trainer_class(config, task_loss, teacher)(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=eval_set,
        compute_loss_func=task_loss,
        compute_metrics=_metrics_fn(config.task, labels),
        preprocess_logits_for_metrics=served_logits,
        callbacks=_callbacks(config, tracker),
    )
    # TaskLoss is a per-batch mean, so gradient accumulation must divide it (the Trainer assumes a
    # compute_loss_func normalised by num_items_in_batch otherwise).
    trainer.loss_is_scaled_for_ga = False
    use_bars(trainer)
    return Job(config, trainer, tracker, transform, precision, accelerator, validation_data)


def _trainer_class(config: FinetuneConfig, task_loss: TaskLoss, teacher: Teacher | None):
    """CheckpointTrainer, or with a teacher the DistillationTrainer that feeds it each batch."""
    if teacher is None:
        return CheckpointTrainer
    loss = DistillationLoss(
        task_loss,
        kind=config.distillation,
        alpha=config.distillation_alpha,
        tau=config.distillation_tau,
    )
    return functools.partial(DistillationTrainer, teacher=teacher, distillation_loss=loss)


def _prepare_output(
    config: FinetuneConfig, labels: tuple[str, ...], *, overwrite: bool = False
) -> None:
    """Clear a previous run when asked, refuse an OUT this run may not use, save the config."""
    out = config.output_dir
    if overwrite:
        clear_run(out)
    if not config.resume and out.exists() and not _holds_only_this_config(out, config):
        raise ConfigError(
            f"--output {out} is not empty and --no-resume was given; use a new folder"
        )
    check_same_labels(out, labels, config.task)
    config.save(out / CONFIG_FILE)


def _holds_only_this_config(out: Path, config: FinetuneConfig) -> bool:
    """True when `out` holds nothing but what this run writes first: its config and labels.

    Every process of a distributed run (torchrun, Azure's pytorch distribution) checks OUT and
    writes the same two files; whichever comes second must not take the first one's files for
    a previous run's output. (`check_same_labels` then refuses a labels.json that differs.)
    """
    names = {p.name for p in out.iterdir() if not is_staging(p)}
    if not names <= {CONFIG_FILE, LABELS_FILE}:
        return False
    saved = out / CONFIG_FILE
    try:
        return CONFIG_FILE not in names or saved.read_text() == config.to_json()
    except OSError:
        return False


def _build_model(
    config: FinetuneConfig, labels: tuple[str, ...], transform: EvalTransform
) -> tuple[torch.nn.Module, Precision, Accelerator]:
    """The model with its head for `labels`, and the precision and accelerator it trains with."""
    # The Trainer seeds only when it starts; the new head (and a scratch model's every weight)
    # is drawn here, so --seed must be in force already for a run to be repeatable.
    set_seed(config.seed)
    model = load_model(
        config.model,
        labels=labels,
        task=config.task,
        image_size=transform.output_size[0],
        with_teacher=config.teacher is not None,
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
    return model, precision, accelerator


def _collator(config: FinetuneConfig, transform: EvalTransform, *, num_labels: int):
    """Batches training images through the augmentations, validation images through the crop."""
    augment = AugmentConfig(
        enabled=config.augmentations,
        rand_augment=config.rand_augment,
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        random_erasing=config.random_erasing,
    )
    return BatchCollator(
        TrainAugment(
            augment,
            output_size=transform.output_size,
            mean=transform.mean,
            std=transform.std,
            num_labels=num_labels,
            multilabel=config.task.is_multilabel,
        ),
        EvalCrop(output_size=transform.output_size, mean=transform.mean, std=transform.std),
    )


def _callbacks(config: FinetuneConfig, tracker: MlflowTracker) -> list[TrainerCallback]:
    """Checkpoint marker, epoch summary, MLflow, and early stopping when asked for."""
    callbacks = [
        MarkCompleteCallback(),
        LogAtSave(),
        EpochSummary(config.metric_for_best_model),
        tracker,
    ]
    if config.early_stopping:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)
        )
    return callbacks


def train(job: Job) -> dict[str, Any]:
    """Train (from the last complete checkpoint when resuming), evaluate; the run's metrics.

    After a resume the training metrics cover the whole run, not only this process's steps.
    """
    checkpoints = job.config.output_dir / CHECKPOINTS_DIR
    resume_from = last_complete_checkpoint(checkpoints) if job.config.resume else None
    if resume_from:
        log.info("resuming from %s", resume_from)
    # Read before training: the checkpoint may be rotated away (save_total_limit) meanwhile.
    seconds_before = recorded_train_seconds(resume_from) if resume_from else None
    trainer = job.trainer
    try:
        train_output = trainer.train(
            resume_from_checkpoint=str(resume_from) if resume_from else None
        )
        train_metrics = train_output.metrics
        if resume_from:
            train_metrics = whole_run_metrics(
                train_metrics,
                history=trainer.state.log_history,
                resumed_step=checkpoint_step(resume_from),
                seconds_before=seconds_before,
                global_step=trainer.state.global_step,
                samples_per_step=samples_per_step(trainer),
            )
        job.tracker.log_metrics(train_metrics, step=trainer.state.global_step)
        eval_metrics = trainer.evaluate()
    except BaseException:
        job.tracker.finish("FAILED")
        raise
    return {
        **train_metrics,
        **eval_metrics,
        "accelerator": job.accelerator.name,
        "precision": job.precision.name,
        "resumed_from": str(resume_from) if resume_from else None,
        "n_train": len(job.trainer.train_dataset),
        "n_validation": len(job.trainer.eval_dataset),
    }


def _record_distillation(job: Job, model_dir: Path) -> None:
    """distillation.json beside the model: the package records what it was distilled from."""
    config = job.config
    record = distillation_record(
        config.teacher,
        kind=config.distillation,
        alpha=config.distillation_alpha,
        tau=config.distillation_tau,
        token=has_distillation_token(job.trainer.model.config),
    )
    (model_dir / DISTILLATION_FILE).write_text(json.dumps(record, indent=2) + "\n")


def evaluate_package(job: Job, history: list[dict[str, Any]]) -> dict[str, float]:
    """Evaluate the packaged model on the validation set as the endpoints will serve it, into
    OUT/evaluation (report.html, metrics, figures); with `--tune-thresholds`/`--calibrate`
    the decisions made there replace the package. Returns the metrics, prefixed `served_`."""
    from deitkit.evaluation import evaluate
    from deitkit.inference import load_packaged

    config, out = job.config, job.config.output_dir
    package, folder = out / MLFLOW_MODEL_DIR, out / EVALUATION_DIR
    shutil.rmtree(folder, ignore_errors=True)  # an interrupted run's: OUT is the run's own
    evaluation = evaluate(
        load_packaged(package),
        job.validation,
        folder,
        tune_thresholds=config.tune_thresholds,
        calibrate=config.calibrate,
        package=package,
        history=history,
        title=f"{config.model} fine-tuned: validation set",
    )
    if evaluation.model is not None:
        shutil.rmtree(package)
        evaluation.model.rename(package)
    log.info("evaluation report of the packaged model: %s", evaluation.report)
    served = {f"{SERVED_PREFIX}{name}": value for name, value in evaluation.metrics.items()}
    job.tracker.log_metrics(served, step=job.trainer.state.global_step)
    job.tracker.log_artifacts([folder])
    return served


def save(job: Job, metrics: dict[str, Any]) -> FinetuneResult:
    """Write the model, its preprocessing and model card, metrics.json and the packaged model
    into OUT."""
    out = job.config.output_dir
    model_dir = out / MODEL_DIR
    # Every rank calls save_model: under ZeRO-3 it gathers the shards; only rank 0 writes.
    job.trainer.save_model(str(model_dir))
    if job.trainer.is_world_process_zero():
        config_json = json.dumps(job.transform.to_config(), indent=2) + "\n"
        (model_dir / CONFIG_NAME).write_text(config_json)
        if job.config.teacher:
            _record_distillation(job, model_dir)
        history = job.trainer.state.log_history
        (model_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2) + "\n")
        # Before packaging, which carries it: README.md with the eval_* metrics (served_* are
        # the package's own, in OUT/evaluation).
        write_model_card(
            model_dir,
            job.config,
            job.trainer,
            metrics=metrics,
            validation=job.validation,
            precision=job.precision.name,
        )
        package_model(model_dir, out / MLFLOW_MODEL_DIR, overwrite=True, validation=job.validation)
        served = evaluate_package(job, history)
        metrics = {**metrics, **served, RUN_ID_KEY: job.tracker.run_id}
        # Last, and whole: its presence marks the run finished (training/outputs.py).
        write_text_atomically(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
        job.tracker.log_artifacts([out / METRICS_FILE, out / CONFIG_FILE])
    job.tracker.finish()
    return FinetuneResult(out, model_dir, out / MLFLOW_MODEL_DIR, metrics)
