"""A resumed run's training metrics over the whole run: mean loss, time and throughput.

The Trainer reports `train_loss`, `train_runtime` and the rates for the steps of its own
`train()` call only; after a resume those are the steps since the checkpoint (none at all when
the run had finished them). The steps before it are in the checkpoint's `log_history` (every
checkpoint's history covers every step up to it: `LogAtSave`) and its completion marker holds
the seconds they took (`MarkCompleteCallback`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

# The Trainer's speed metrics, which the whole-run figures replace.
SPEED_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


class LogAtSave(TrainerCallback):
    """Logs the loss at every checkpoint, so its `log_history` holds the loss of every step.

    Without it, the steps after the last logging step before a checkpoint are lost with the
    process when it is killed, and a resumed run cannot average over them.
    """

    def on_step_end(self, args, state, control, **kwargs):
        return self._log_if_saving(control)

    def on_epoch_end(self, args, state, control, **kwargs):
        return self._log_if_saving(control)

    @staticmethod
    def _log_if_saving(control):
        if control.should_save:
            control.should_log = True
        return control


def logged_loss(history: Sequence[Mapping[str, Any]], *, up_to: int) -> tuple[float, int]:
    """The summed loss of the logged steps up to step `up_to`, and how many steps that covers.

    Each `loss` entry of the Trainer's `log_history` is the mean over the steps since the
    previous one, so it counts for that many steps.
    """
    total, covered = 0.0, 0
    for entry in sorted((e for e in history if "loss" in e), key=lambda e: e["step"]):
        if entry["step"] > up_to:
            break
        total += entry["loss"] * (entry["step"] - covered)
        covered = entry["step"]
    return total, covered


def samples_per_step(trainer) -> float:
    """Training samples per optimizer step, as the Trainer counts them for its speed metrics.

    The Trainer's count for a whole schedule: the dataset times the epochs, or `max_steps`
    times the total batch size when `max_steps` is given (transformers'
    `set_initial_training_values`).
    """
    args = trainer.args
    if args.max_steps > 0:
        planned = args.max_steps * trainer.get_total_train_batch_size(args)
    else:
        planned = len(trainer.train_dataset) * args.num_train_epochs
    return planned / max(trainer.state.max_steps, 1)


def whole_run_metrics(
    session: Mapping[str, Any],
    *,
    history: Sequence[Mapping[str, Any]],
    resumed_step: int,
    seconds_before: float | None,
    global_step: int,
    samples_per_step: float,
) -> dict[str, Any]:
    """The Trainer's metrics of a resumed `train()` call, made to cover the whole run.

    Args:
        session: The Trainer's metrics of this call (`TrainOutput.metrics`).
        history: The run's `log_history` (the checkpoint's, carried on by this call).
        resumed_step: The step of the checkpoint this call resumed from.
        seconds_before: Seconds spent training up to that checkpoint; None where unknown.
        global_step: The step the run ended at.
        samples_per_step: Training samples per optimizer step, as the Trainer counts them.

    Returns:
        `session` with `train_loss` the mean over every step whose loss is known, and the
        speed metrics over the whole run; where `seconds_before` is unknown, the speed metrics
        of this call are kept under `resumed_part_*` names instead.
    """
    steps_now = global_step - resumed_step
    loss_before, steps_before = logged_loss(history, up_to=resumed_step)
    metrics = dict(session)
    loss_now = session["train_loss"] * steps_now
    metrics["train_loss"] = (loss_before + loss_now) / max(steps_before + steps_now, 1)
    if seconds_before is None:
        for key in SPEED_KEYS:
            if key in metrics:
                metrics["resumed_part_" + key] = metrics.pop(key)
        return metrics
    runtime = seconds_before + session["train_runtime"]
    metrics["train_runtime"] = round(runtime, 4)
    if runtime > 0:
        metrics["train_samples_per_second"] = round(samples_per_step * global_step / runtime, 3)
        metrics["train_steps_per_second"] = round(global_step / runtime, 3)
    return metrics
