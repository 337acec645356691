"""What a person watching training sees: progress bars, and one summary line per evaluation.

In a terminal the Trainer's bars run with the latest loss on them, in a notebook its widget;
elsewhere (a log file, CI, an Azure ML job's log) there are no bars, only the summary lines
(`deitkit.progress`).
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from deitkit.progress import is_terminal


class QuietProgress(ProgressCallback):
    """The Trainer's progress bars, with the latest loss on the bar instead of a dict per log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and "loss" in (logs or {}):
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


def use_bars(trainer) -> None:
    """The Trainer's own bars (a dict per log on them) out; QuietProgress in, in a terminal.

    In a notebook the Trainer's widget stays; elsewhere EpochSummary's lines are all there is.
    """
    trainer.remove_callback(ProgressCallback)  # a class: it removes the first instance of it
    if is_terminal():
        trainer.add_callback(QuietProgress())


class EpochSummary(TrainerCallback):
    """One line per evaluation: epoch, losses, the selection metric and the time so far.

    Written to stderr, with the bars and the logs: stdout is the command's result.
    """

    def __init__(self, metric: str):
        self.metric = metric
        self.started = time.perf_counter()
        self.last_train_loss: float | None = None
        self.trained = False  # the evaluation after training is the best checkpoint's

    def on_train_end(self, args, state, control, **kwargs):
        self.trained = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_train_loss = logs["loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        train_loss = "-" if self.last_train_loss is None else f"{self.last_train_loss:.4f}"
        value = metrics.get(f"eval_{self.metric}", float("nan"))
        when = (
            f"best checkpoint (step {_step(state.best_model_checkpoint)})"
            if self.trained
            else f"epoch {state.epoch:.2f}/{args.num_train_epochs:g}  train_loss {train_loss}"
        )
        tqdm.write(
            f"{when}  eval_loss {metrics.get('eval_loss', float('nan')):.4f}  "
            f"{self.metric} {value:.4f}  ({time.perf_counter() - self.started:.0f} s)",
            file=sys.stderr,
        )


def _step(checkpoint: str | None) -> str:
    """`120` for `.../checkpoint-120`; `-` where the Trainer kept no best checkpoint."""
    return checkpoint.rsplit("-", 1)[-1] if checkpoint else "-"
