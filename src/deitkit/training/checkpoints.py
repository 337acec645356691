"""Checkpoints a re-run resumes from: only complete ones, and only for the same label map."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from deitkit.errors import ConfigError
from deitkit.workdir import write_text_atomically

CHECKPOINTS_DIR = "checkpoints"
# Written after the Trainer has finished writing a checkpoint; a folder without it was cut off.
COMPLETE_MARKER = "deitkit-complete"
LABELS_FILE = "labels.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class MarkCompleteCallback(TrainerCallback):
    """Marks each checkpoint complete once `on_save` fires (after every file is written).

    The marker also records the seconds spent training up to the checkpoint, the sessions
    before a resume included, so a resumed run can report its whole run's speed.
    """

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._before: float | None = 0.0  # seconds trained before this session; None: unknown

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()
        resumed = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self._before = recorded_train_seconds(resumed) if state.global_step else 0.0

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                seconds = None
                if self._before is not None:
                    seconds = round(self._before + time.perf_counter() - self._started, 4)
                record = {"step": state.global_step, "train_seconds": seconds}
                write_text_atomically(folder / COMPLETE_MARKER, json.dumps(record) + "\n")
        return control


def recorded_train_seconds(checkpoint: Path) -> float | None:
    """The training seconds the checkpoint's marker records; None where it records none.

    Markers written before deitkit recorded the time hold only the step number.
    """
    try:
        record = json.loads((checkpoint / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    seconds = record.get("train_seconds") if isinstance(record, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else None


def checkpoint_step(checkpoint: Path) -> int:
    """The global step of a `checkpoint-N` folder."""
    match = _CHECKPOINT.match(checkpoint.name)
    if match is None:
        raise ValueError(f"{checkpoint} is not a checkpoint-N folder")
    return int(match.group(1))


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest-step checkpoint under `folder` that carries the completion marker."""
    if not folder.is_dir():
        return None
    complete = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if (match := _CHECKPOINT.match(path.name)) and (path / COMPLETE_MARKER).is_file()
    ]
    return max(complete)[1] if complete else None


def check_same_labels(output_dir: Path, labels: tuple[str, ...], task: str) -> None:
    """Record the label map of a run in OUT, or refuse a resume whose labels differ."""
    path = output_dir / LABELS_FILE
    current = {"task": str(task), "labels": list(labels)}
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != current:
            raise ConfigError(
                f"{output_dir} holds a run with task {previous['task']} and labels "
                f"{previous['labels']}, but this data has task {task} and labels {list(labels)}; "
                "use a new --output"
            )
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(current, indent=2) + "\n")


def load_checkpoint_weights(model: torch.nn.Module, folder: str | Path) -> None:
    """Copy the weights saved in `folder` into `model`, through `from_pretrained`.

    transformers 5 saves checkpoints under the published key names (e.g.
    `deit.encoder.layer.0.attention.attention.query.weight`) while the modules use new ones
    (`deit.layers.0.attention.q_proj.weight`); the Trainer's own loader reads the file as it is,
    so nothing matches and the weights stay as they were. `from_pretrained` maps the names.
    """
    loaded = type(model).from_pretrained(str(folder), dtype=next(model.parameters()).dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)


class CheckpointTrainer(Trainer):
    """The Trainer, resuming and restoring the best model with `load_checkpoint_weights`."""

    def _plain_model(self) -> bool:
        return not (self.is_deepspeed_enabled or self.is_fsdp_enabled)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if not self._plain_model():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_checkpoint_weights(model or self.model, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        if not self._plain_model():
            return super()._load_best_model()
        load_checkpoint_weights(self.model, self.state.best_model_checkpoint)
