"""Model references (hub id, local folder, `scratch:<arch>`) resolved to a fine-tunable model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transformers
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
from transformers.utils import cached_file

from deitkit.errors import ConfigError
from deitkit.input_size import at_input_size, check_input_size
from deitkit.tasks import Task
from deitkit.transforms import CONFIG_NAME, EvalTransform

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "scratch:"
# The input size of the published DeiT, ViT and BEiT checkpoints: a scratch model's own size
# unless its reference overrides image_size.
SCRATCH_IMAGE_SIZE = 224
# --image-size -1 (Azure's image_width/image_height -1): the model's own size.
OWN_SIZE = -1

# Shapes of the published checkpoints (DeiT paper table 1, ViT-B/16, BEiT-B/16).
SCRATCH_ARCHS: dict[str, tuple[str, dict[str, int]]] = {
    "deit-tiny": ("deit", {"hidden_size": 192, "num_attention_heads": 3, "intermediate_size": 768}),
    "deit-small": (
        "deit",
        {"hidden_size": 384, "num_attention_heads": 6, "intermediate_size": 1536},
    ),
    "deit-base": (
        "deit",
        {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
    ),
    "vit-base": ("vit", {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}),
    "beit-base": (
        "beit",
        {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
    ),
}

# DeiT's distilled students: the same shapes, with a distillation token and head.
DISTILLED_SCRATCH_ARCHS = ("deit-tiny-distilled", "deit-small-distilled", "deit-base-distilled")
SCRATCH_ARCHS.update(
    {name: SCRATCH_ARCHS[name.removesuffix("-distilled")] for name in DISTILLED_SCRATCH_ARCHS}
)
# The class of DeiT with a distillation token and two heads; a checkpoint's config.json names it
# in `architectures`, and inference then averages the two heads.
WITH_TEACHER = "DeiTForImageClassificationWithTeacher"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: `kind` is `hub`, `local` or `scratch`.

    For a local model, `ref` is the folder with config.json and the weights, and `processor`
    the folder with its preprocessor_config.json (apart from `ref` in a catalog MLflow model).
    """

    ref: str
    kind: str
    arch: str | None = None
    overrides: tuple[tuple[str, int], ...] = ()
    processor: str | None = None


def parse_model_ref(ref: str, *, flag: str = "--model") -> ModelSource:
    """Classify `ref`: `scratch:<arch>[:key=value,...]`, an existing folder, or a hub id.

    A folder is a checkpoint or an MLflow model (`deitkit.inference.mlflow_layouts`: a deitkit
    package, Azure's catalog model, or what Azure's model-import step leaves), as Azure's
    `mlflow_model` input passes it.
    """
    if ref.startswith(SCRATCH_PREFIX):
        arch, _, extra = ref[len(SCRATCH_PREFIX) :].partition(":")
        if arch not in SCRATCH_ARCHS:
            raise ConfigError(
                f"unknown scratch architecture {arch!r} in {flag} {ref!r}; "
                f"expected one of: {', '.join(SCRATCH_ARCHS)}"
            )
        return ModelSource(ref, "scratch", arch, _parse_overrides(ref, extra, flag))
    path = Path(ref).expanduser()
    if path.is_dir():
        from deitkit.inference.mlflow_layouts import model_files

        try:
            files = model_files(path)
        except ConfigError as err:
            raise ConfigError(f"{flag} {ref!r}: {err}") from None
        return ModelSource(str(files.weights), "local", processor=str(files.processor))
    if path.exists() or ref.startswith((".", "/")):
        raise ConfigError(f"{flag} {ref!r} is not a checkpoint folder")
    return ModelSource(ref, "hub")


def _parse_overrides(ref: str, extra: str, flag: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for item in filter(None, extra.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise ConfigError(f"{flag} {ref!r}: expected key=integer overrides, got {item!r}")
        pairs.append((key, int(value)))
    return tuple(pairs)


def scratch_patch_size(image_size: int) -> int:
    """16 (as published) from 64 px up; smaller inputs keep a 4x4 grid of patches.

    Not an 8x8 grid at 64 px: four times the tokens made DeiT-tiny learn the multilabel digits
    much more slowly (iou 0.05 after 9 epochs against 0.64 after 15 with 16 px patches; issue 13,
    docs/finetune.md).
    """
    return 16 if image_size >= 64 else max(2, image_size // 4)


def scratch_image_size(source: ModelSource, requested: int | None = None) -> int:
    """The input size of a scratch model: `requested`, or its own where that is None or -1.

    Its own size is the reference's `image_size` override (`scratch:deit-tiny:image_size=32`),
    else 224 as published.

    Raises:
        ConfigError: a requested size that disagrees with the reference's override.
    """
    overrides = dict(source.overrides)
    own = overrides.get("image_size", SCRATCH_IMAGE_SIZE)
    if requested in (None, OWN_SIZE):
        return own
    if "image_size" in overrides and requested != own:
        raise ConfigError(
            f"--image-size {requested} disagrees with image_size={own} in --model "
            f"{source.ref!r}; give one of them (or --image-size -1 for the model's own)"
        )
    return requested


def scratch_config(source: ModelSource, image_size: int | None = None) -> PretrainedConfig:
    """A random-initialised config of `source.arch` with any overrides.

    Args:
        source: A `scratch:` reference.
        image_size: The input size; None or -1 for the model's own (`scratch_image_size`).
    """
    model_type, shape = SCRATCH_ARCHS[source.arch]
    size = scratch_image_size(source, image_size)
    fields: dict[str, Any] = {
        **shape,
        "num_hidden_layers": 12,
        "image_size": size,
        "patch_size": scratch_patch_size(size),
    }
    for key, value in source.overrides:
        fields[key] = value
    config = AutoConfig.for_model(model_type, **fields)
    if source.arch in DISTILLED_SCRATCH_ARCHS:
        config.architectures = [WITH_TEACHER]
    unknown = [k for k, _ in source.overrides if not hasattr(config, k)]
    if unknown:
        raise ConfigError(
            f"--model {source.ref!r}: {model_type} configs have no field {unknown[0]!r}"
        )
    return config


def model_transform(
    ref: str, image_size: int | None = None, *, flag: str = "--model"
) -> EvalTransform:
    """The evaluation preprocessing (`EvalTransform`) of model `ref` at `image_size`.

    None or -1 is the model's own size: a scratch model's (`scratch_image_size`), or the crop of
    a checkpoint's preprocessing. Another size scales a checkpoint's preprocessing to it
    (`EvalTransform.scaled_to`); `load_model` resizes the model to match.

    Raises:
        ConfigError: naming `flag`, a checkpoint without preprocessing or a size the model
            cannot take.
    """
    source = parse_model_ref(ref, flag=flag)
    if source.kind == "scratch":
        model_config = scratch_config(source, image_size)
        check_input_size(model_config, model_config.image_size, ref=ref)
        return EvalTransform.for_image_size(model_config.image_size)
    if source.kind == "local":
        if not (Path(source.processor) / CONFIG_NAME).is_file():
            raise ConfigError(f"{flag} {ref}: the checkpoint has no {CONFIG_NAME}")
        transform = EvalTransform.from_pretrained(
            source.processor, model_type=AutoConfig.from_pretrained(source.ref).model_type
        )
    else:
        transform = EvalTransform.from_pretrained(cached_file(source.ref, CONFIG_NAME))
    if image_size in (None, OWN_SIZE) or (image_size, image_size) == transform.output_size:
        return transform
    check_input_size(AutoConfig.from_pretrained(source.ref), image_size, ref=ref)
    return transform.scaled_to(image_size)


def has_distillation_token(config: PretrainedConfig) -> bool:
    """Whether `config` is a distilled DeiT (a distillation token and head beside the class one)."""
    return WITH_TEACHER in (getattr(config, "architectures", None) or [])


def finetunable_class(
    config: PretrainedConfig, *, with_teacher: bool = False
) -> type[PreTrainedModel]:
    """The image-classification class for `config`.

    For DeiT the auto mapping lists the fine-tunable class first and the distilled
    `...WithTeacher` class second. Without a teacher a distilled checkpoint is loaded into the
    first, to be fine-tuned with an ordinary classification head (its distillation head would
    have no target); with one (`with_teacher`) it keeps both heads.
    """
    if with_teacher and has_distillation_token(config):
        return getattr(transformers, WITH_TEACHER)
    names = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.get(config.model_type)
    if names is None:
        raise ConfigError(
            f"model type {config.model_type!r} has no image-classification class in transformers"
        )
    name = names[0] if isinstance(names, (tuple, list)) else names
    return getattr(transformers, name)


def label_config(labels: tuple[str, ...] | list[str], task: Task) -> dict[str, Any]:
    """Config fields that carry the label map and the task into every saved checkpoint."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": (
            "multi_label_classification" if task.is_multilabel else "single_label_classification"
        ),
    }


def load_model(
    ref: str,
    *,
    labels: tuple[str, ...] | list[str],
    task: Task,
    image_size: int | None = None,
    with_teacher: bool = False,
) -> PreTrainedModel:
    """Load `ref` for fine-tuning on `labels`; the head is replaced when the label set differs.

    `image_size` None or -1 keeps the model's own input size. A pretrained model at another
    size has its position weights resized (`deitkit.input_size.at_input_size`), so it runs
    natively at that size. `with_teacher`: the run distils, so a distilled DeiT keeps its
    distillation head (`finetunable_class`).

    Raises:
        ConfigError: a size the model cannot take (`deitkit.input_size.check_input_size`).
    """
    source = parse_model_ref(ref)
    fields = label_config(labels, task)
    if source.kind == "scratch":
        config = scratch_config(source, image_size)
        check_input_size(config, config.image_size, ref=ref)
        config.update(fields)
        return finetunable_class(config, with_teacher=with_teacher)(config)
    config = AutoConfig.from_pretrained(source.ref)
    size = None if image_size in (None, OWN_SIZE) else image_size
    if not hasattr(config, "image_size"):
        size = None  # a convnet (ResNet, RegNet): any input size, no position weights
    if size is not None:
        check_input_size(config, size, ref=ref)
    same_head = config.num_labels == len(labels) and [
        config.id2label[i] for i in range(config.num_labels)
    ] == list(labels)
    if not same_head:
        log.info(
            "replacing the %d-label head of %s with %d labels", config.num_labels, ref, len(labels)
        )
    config.update(fields)
    model = finetunable_class(config, with_teacher=with_teacher).from_pretrained(
        source.ref, config=config, ignore_mismatched_sizes=not same_head
    )
    return model if size is None else at_input_size(model, size)
