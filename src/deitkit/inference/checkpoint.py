"""What an inference checkpoint folder holds: labels, task and decisions, checked on reading."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig, PretrainedConfig

from deitkit.decisions import DEFAULT_TEMPERATURE, check_label_thresholds, check_temperature
from deitkit.errors import ConfigError
from deitkit.tasks import Task, check_threshold, parse_task

CONFIG_FILE = "config.json"
# labels, task, threshold(s) and temperature, written beside a packaged checkpoint
# The Trainer's log_history, which `deitkit finetune` writes beside the model and the package
# carries, for the evaluation report's training curves.
HISTORY_FILE = "training_history.json"
DEITKIT_FILE = "deitkit.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"  # sharded weights
DEFAULT_THRESHOLD = 0.5

_PROBLEM_TYPES = {
    None: Task.MULTICLASS,  # hub checkpoints such as facebook/deit-base-patch16-224 set none
    "single_label_classification": Task.MULTICLASS,
    "multi_label_classification": Task.MULTILABEL,
}


@dataclass(frozen=True)
class CheckpointInfo:
    """The label list (id2label order), the task, and how decisions are made from the logits.

    Attributes:
        threshold: The default multilabel threshold, for every label without its own.
        thresholds: Per-label multilabel thresholds in label order (deitkit.json's
            `thresholds`), or None.
        temperature: Logits are divided by it before the activation (1.0: unchanged).
    """

    config: PretrainedConfig
    labels: tuple[str, ...]
    task: Task
    threshold: float
    thresholds: tuple[float, ...] | None = None
    temperature: float = DEFAULT_TEMPERATURE


def has_safetensors(folder: Path) -> bool:
    """True when `folder` holds its weights as safetensors (one file or an index of shards)."""
    return (folder / SAFETENSORS_FILE).is_file() or (folder / SAFETENSORS_INDEX).is_file()


def read_checkpoint(folder: str | Path) -> CheckpointInfo:
    """Read and check `folder`/config.json and, when present, `folder`/deitkit.json.

    Raises:
        ConfigError: the folder or config is missing or invalid, the labels are not numbered
            0..N-1, the problem type is not a classification, or deitkit.json disagrees.
    """
    folder = Path(folder)
    config_file = folder / CONFIG_FILE
    if not config_file.is_file():
        raise ConfigError(f"{folder}: not a checkpoint folder (no {CONFIG_FILE})")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(
            f"{config_file}: cannot be read as a transformers config: {err}"
        ) from None
    try:
        labels = tuple(str(config.id2label[i]) for i in range(config.num_labels))
    except KeyError as err:
        raise ConfigError(
            f"{config_file}: id2label has no entry for id {err}; "
            f"expected ids 0..{config.num_labels - 1}"
        ) from None
    problem_type = getattr(config, "problem_type", None)
    if problem_type not in _PROBLEM_TYPES:
        raise ConfigError(
            f"{config_file}: problem_type {problem_type!r} is not an image classification; "
            f"expected one of: {', '.join(str(p) for p in _PROBLEM_TYPES if p)}"
        )
    task, threshold = _PROBLEM_TYPES[problem_type], DEFAULT_THRESHOLD
    thresholds, temperature = None, DEFAULT_TEMPERATURE
    extra = _read_deitkit_file(folder / DEITKIT_FILE)
    if extra is not None:
        source = folder / DEITKIT_FILE
        if "labels" in extra and list(extra["labels"]) != list(labels):
            raise ConfigError(
                f"{source}: labels {extra['labels']} differ from {CONFIG_FILE}'s "
                f"id2label {list(labels)}"
            )
        if "task" in extra:
            try:
                declared = parse_task(extra["task"])
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
            if problem_type is not None and declared is not task:
                raise ConfigError(
                    f"{source}: task {declared.value!r} contradicts {CONFIG_FILE}'s problem_type "
                    f"{problem_type!r}"
                )
            task = declared
        if "threshold" in extra:
            threshold = check_threshold(extra["threshold"], name=f"{source}: threshold")
        if extra.get("thresholds") is not None:
            thresholds = _label_thresholds(extra["thresholds"], labels, task, source)
        if extra.get("temperature") is not None:
            temperature = check_temperature(extra["temperature"], name=f"{source}: temperature")
    return CheckpointInfo(config, labels, task, threshold, thresholds, temperature)


def _label_thresholds(
    value: object, labels: tuple[str, ...], task: Task, source: Path
) -> tuple[float, ...]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}: thresholds must be a JSON object of label -> number in [0, 1], "
            f"got {type(value).__name__}"
        )
    return check_label_thresholds(value, labels, task, name=f"{source}: thresholds")


def _read_deitkit_file(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read as JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
