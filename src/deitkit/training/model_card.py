"""The model card (README.md) `deitkit finetune` writes beside the model it saved.

Hugging Face Hub metadata written by `huggingface_hub.ModelCardData` (model-index with the
validation metrics, base_model, license, tags), then what the Trainer's own cards hold: the
hyperparameters, the results per evaluation (transformers.modelcard's table) and the framework
versions. docs/finetune.md says where each value comes from.
"""

from __future__ import annotations

import math
import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.modelcard import (
    extract_hyperparameters_from_trainer,
    make_markdown_table,
    parse_log_history,
)
from transformers.training_args import OptimizerNames

import deitkit
from deitkit.data.dataset import ImageDataset
from deitkit.metrics import METRIC_NAMES
from deitkit.models import SCRATCH_PREFIX, parse_model_ref
from deitkit.packaging import CARD_FILE
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig

TASK_TYPE = "image-classification"
# deitkit's metric names → the Hub's metric ids (hf.co/metrics), where there is one.
HUB_METRICS = {
    "accuracy": "accuracy",
    "f1_score": "f1",
    "precision_score": "precision",
    "recall_score": "recall",
    "AUC": "roc_auc",
    "matthews_correlation": "matthews_correlation",
}
# A snapshot in a Hugging Face cache: .../models--ORG--NAME/snapshots/<revision>
_HUB_CACHE_SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/[^/]+")
FRAMEWORKS = {
    "transformers": "Transformers",
    "torch": "Pytorch",
    "datasets": "Datasets",
    "tokenizers": "Tokenizers",
}
NOTE = (
    "<!-- Written by `deitkit finetune` from the run's configuration, data and metrics. "
    "Complete the descriptions before you publish it. -->"
)


def write_model_card(
    folder: Path,
    config: FinetuneConfig,
    trainer: Any,
    *,
    metrics: dict[str, Any],
    validation: ImageDataset,
    precision: str,
) -> Path:
    """Write README.md into `folder` (the saved model) and return its path.

    Args:
        folder: The checkpoint folder the card describes.
        config: The run's resolved configuration.
        trainer: The run's Trainer, after training: its arguments and log history.
        metrics: The run's metrics (metrics.json's training and eval_* values).
        validation: The data the eval_* metrics were computed on.
        precision: The precision the run trained in (fp32, bf16, fp16).
    """
    from transformers import AutoConfig

    card = model_card(
        config,
        trainer,
        AutoConfig.from_pretrained(folder),  # the saved model's, whatever wraps the trained one
        metrics=metrics,
        validation=validation,
        precision=precision,
    )
    path = folder / CARD_FILE
    card.save(path)
    return path


def model_card(
    config: FinetuneConfig,
    trainer: Any,
    model_config: Any,
    *,
    metrics: dict[str, Any],
    validation: ImageDataset,
    precision: str,
) -> ModelCard:
    """The model card of a finished run (see `write_model_card`); `model_config` is the saved
    model's config (labels, model type, input size)."""
    task = config.task
    dataset = dataset_name(validation)
    base = base_model(config.model)
    name = f"{_short_name(config.model, base)}-finetuned-{dataset}"
    scores = model_index_metrics(metrics, task)
    data = ModelCardData(
        model_name=name,
        base_model=base,
        license=base_license(config.model),
        library_name="transformers",
        pipeline_tag=TASK_TYPE,
        tags=_tags(config, model_config.model_type),
        datasets=[dataset],
        metrics=sorted({_hub_metric(metric) for metric in scores}),
        eval_results=[
            EvalResult(
                task_type=TASK_TYPE,
                task_name="Image Classification",
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split="validation",
                metric_type=_hub_metric(metric),
                metric_name=metric,
                metric_value=value,
            )
            for metric, value in scores.items()
        ]
        or None,
    )
    body = _body(config, trainer, model_config, name, base, dataset, metrics, validation, precision)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def model_index_metrics(metrics: dict[str, Any], task: Task) -> dict[str, float]:
    """deitkit's validation metrics (METRIC_NAMES) as metrics.json has them, without `eval_`."""
    return {
        name: metrics[f"eval_{name}"]
        for name in METRIC_NAMES[task]
        if isinstance(metrics.get(f"eval_{name}"), int | float)
        and not isinstance(metrics[f"eval_{name}"], bool)
    }


def dataset_name(dataset: ImageDataset) -> str:
    """The name of the folder holding the images (above their label folders), e.g. `digits`."""
    parents = {os.path.normpath(example.path.parent) for example in dataset.examples}
    common = Path(os.path.commonpath(sorted(parents))) if parents else dataset.root
    if common.name in dataset.labels:  # every image in one label's folder
        common = common.parent
    return common.name or "data"


def base_model(model: str) -> str | None:
    """The Hub id the run started from: `--model` itself, the id of a Hugging Face cache
    snapshot, or an MLflow transformers model's `source_model_name` (Azure's catalog); None
    for a scratch model or another local folder."""
    if model.startswith(SCRATCH_PREFIX):
        return None
    source = parse_model_ref(model)
    if source.kind == "hub":
        return model
    match = _HUB_CACHE_SNAPSHOT.search(Path(source.ref).resolve().as_posix())
    if match:
        return f"{match['org']}/{match['name']}"
    return _mlflow_source_model(Path(model))


def base_license(model: str) -> str | None:
    """The `license` of the base model's own card, where it has one deitkit can read.

    A hub id's README.md is read from the Hugging Face cache, or downloaded (not offline:
    HF_HUB_OFFLINE); a local model's from its folder. None where there is none: the card then
    has no license (the Hub shows it as unknown) rather than a guess.
    """
    if model.startswith(SCRATCH_PREFIX):
        return None
    source = parse_model_ref(model)
    if source.kind == "hub":
        from transformers.utils import cached_file

        readme = cached_file(
            model,
            CARD_FILE,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        candidates = [Path(readme)] if readme else []
    else:
        candidates = [Path(model) / CARD_FILE, Path(source.ref) / CARD_FILE]
    for path in candidates:
        if path.is_file():
            try:
                license_ = ModelCard.load(path, ignore_metadata_errors=True).data.license
            except (OSError, ValueError):
                continue
            if isinstance(license_, str) and license_:
                return license_
    return None


def _mlflow_source_model(folder: Path) -> str | None:
    """`source_model_name` of an MLflow transformers model (mlflow.transformers writes it)."""
    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
        name = spec["flavors"]["transformers"]["source_model_name"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and "/" in name else None


def _short_name(model: str, base: str | None) -> str:
    """`deit-tiny-patch16-224` for a hub id, `deit-tiny` for scratch:deit-tiny:..., else the
    folder's name."""
    if base:
        return base.rsplit("/", 1)[-1]
    if model.startswith(SCRATCH_PREFIX):
        return model.removeprefix(SCRATCH_PREFIX).split(":", 1)[0]
    return Path(model).resolve().name


def _hub_metric(metric: str) -> str:
    for prefix, hub_id in HUB_METRICS.items():
        if metric == prefix or metric.startswith(prefix + "_"):
            return hub_id
    return metric


def _tags(config: FinetuneConfig, model_type: str) -> list[str]:
    tags = [TASK_TYPE, "vision", model_type, "deitkit", "generated_from_trainer"]
    if config.task.is_multilabel:
        tags.append("multi-label-classification")
    if config.teacher:
        tags.append("knowledge-distillation")
    return tags


def _body(
    config: FinetuneConfig,
    trainer: Any,
    model_config: Any,
    name: str,
    base: str | None,
    dataset: str,
    metrics: dict[str, Any],
    validation: ImageDataset,
    precision: str,
) -> str:
    labels = list(model_config.id2label.values())
    origin = (
        f"a fine-tuned version of [{base}](https://huggingface.co/{base})"
        if base
        else f"trained from random weights (`{config.model}`)"
        if config.model.startswith(SCRATCH_PREFIX)
        else f"a fine-tuned version of the local model `{Path(config.model).name}`"
    )
    evals = {
        key.removeprefix("eval_"): value
        for key, value in metrics.items()
        if key.startswith("eval_") and not key.endswith(_THROUGHPUT)
    }
    sections = [
        NOTE,
        f"# {name}",
        f"This model is {origin} on the {dataset} dataset ({config.task.value}). It achieves "
        "the following results on the validation set:\n\n" + _bullets(evals),
        "## Model description\n\n"
        f"A {model_config.model_type} image classifier with {len(labels)} labels: "
        f"{', '.join(labels)}. "
        + (
            "Each label is decided on its own (sigmoid); any number of them may apply."
            if config.task.is_multilabel
            else "One label per image (softmax)."
        ),
        "## Intended uses & limitations\n\nMore information needed",
        "## Training and evaluation data\n\n"
        f"{metrics.get('n_train', len(trainer.train_dataset))} training and "
        f"{metrics.get('n_validation', len(validation))} validation images of the {dataset} "
        f"dataset ({validation.layout} layout).",
        "## Training procedure",
        "### Training hyperparameters\n\nThe following hyperparameters were used during "
        "training:\n\n" + _bullets(_hyperparameters(config, trainer, model_config, precision)),
        "### Training results\n\n" + _results_table(trainer.state.log_history, config),
        "### Training metrics\n\n" + _block(metrics, "train_", "epoch", "total_flos"),
        "### Evaluation metrics\n\n" + _block(metrics, "eval_"),
        "### Framework versions\n\n" + "\n".join(f"- {k} {v}" for k, v in _versions().items()),
    ]
    return "\n\n".join(sections) + "\n"


_THROUGHPUT = ("_runtime", "_samples_per_second", "_steps_per_second")


def _hyperparameters(
    config: FinetuneConfig, trainer: Any, model_config: Any, precision: str
) -> dict[str, Any]:
    """The Trainer cards' hyperparameters, and what deitkit adds to the recipe."""
    values = extract_hyperparameters_from_trainer(trainer)
    args = trainer.args
    optimizer = OptimizerNames(args.optim).value  # the card's own line prints the enum's repr
    if "adam" in optimizer:
        optimizer += (
            f" with betas=({args.adam_beta1},{args.adam_beta2}), epsilon={args.adam_epsilon}"
        )
    values["optimizer"] = f"{optimizer} (--optimizer {config.optimizer})"
    values["weight_decay"] = args.weight_decay
    values["precision"] = precision
    values["image_size"] = model_config.image_size
    values["augmentations"] = config.augmentations
    for field in ("rand_augment", "mixup", "cutmix", "random_erasing", "label_smoothing"):
        if getattr(config, field):
            values[field] = getattr(config, field)
    if config.class_weights != "none":
        values["class_weights"] = config.class_weights
    values["metric_for_best_model"] = config.metric_for_best_model
    if config.teacher:
        values["distillation"] = (
            f"{config.distillation} from {config.teacher} (alpha={config.distillation_alpha}, "
            f"tau={config.distillation_tau})"
        )
    return values


def _results_table(history: list[dict[str, Any]], config: FinetuneConfig) -> str:
    """Training Loss | Epoch | Step | Validation Loss | the selection metric, per evaluation."""
    _, lines, _ = parse_log_history(history)
    if not lines:
        return "No evaluation during training."
    metric = " ".join(part.capitalize() for part in config.metric_for_best_model.split("_"))
    keep = ("Training Loss", "Epoch", "Step", "Validation Loss", metric)
    return make_markdown_table([{k: line[k] for k in keep if k in line} for line in lines])


def _block(metrics: dict[str, Any], *prefixes: str) -> str:
    """`name = value` lines, as the Trainer's log_metrics prints them, in a code block."""
    chosen = {k: v for k, v in metrics.items() if k.startswith(prefixes) and _is_number(v)}
    width = max(map(len, chosen), default=0)
    lines = [f"{k:<{width}} = {_format(v)}" for k, v in chosen.items()]
    return "```\n" + "\n".join(lines) + "\n```"


def _bullets(values: dict[str, Any]) -> str:
    return "\n".join(f"- {name}: {_format(value)}" for name, value in values.items())


def _format(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value != int(value):
        return f"{value:.4g}" if abs(value) < 1e-3 else f"{value:.4f}".rstrip("0")
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _versions() -> dict[str, str]:
    """Transformers, Pytorch, Datasets and Tokenizers where installed, and deitkit."""
    found = {}
    for package, label in FRAMEWORKS.items():
        try:
            found[label] = version(package)
        except PackageNotFoundError:
            continue
    found["deitkit"] = deitkit.__version__
    return found
