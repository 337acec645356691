"""What a person watching training sees: progress bars, and one summary line per evaluation."""

from __future__ import annotations

import time

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback


class QuietProgress(ProgressCallback):
    """The Trainer's progress bars, with the latest loss on the bar instead of a dict per log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and "loss" in (logs or {}):
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


class EpochSummary(TrainerCallback):
    """One line per evaluation: epoch, losses, the selection metric and the time so far."""

    def __init__(self, metric: str):
        self.metric = metric
        self.started = time.perf_counter()
        self.last_train_loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_train_loss = logs["loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        train_loss = "-" if self.last_train_loss is None else f"{self.last_train_loss:.4f}"
        value = metrics.get(f"eval_{self.metric}", float("nan"))
        tqdm.write(
            f"epoch {state.epoch:.2f}/{args.num_train_epochs:g}  train_loss {train_loss}  "
            f"eval_loss {metrics.get('eval_loss', float('nan')):.4f}  {self.metric} {value:.4f}  "
            f"({time.perf_counter() - self.started:.0f} s)"
        )
