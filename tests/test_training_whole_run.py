"""A resumed run's training metrics cover every step and second of the run, not the last call."""

from __future__ import annotations

import pytest
from transformers import TrainerControl

from deitkit.training.whole_run import LogAtSave, logged_loss, whole_run_metrics

# Logged every 4 steps and at the checkpoints (3, 6); evaluations and the summary in between.
HISTORY = [
    {"loss": 1.0, "step": 3},
    {"eval_loss": 9.0, "step": 3},
    {"loss": 0.7, "step": 4},
    {"loss": 0.4, "step": 6},
    {"loss": 0.3, "step": 8},
    {"loss": 0.2, "step": 9},
    {"train_loss": 0.25, "train_runtime": 2.0, "step": 9},
]


def test_logged_loss_weights_each_entry_by_the_steps_it_covers():
    assert logged_loss(HISTORY, up_to=6) == pytest.approx((3 * 1.0 + 0.7 + 2 * 0.4, 6))
    assert logged_loss(HISTORY, up_to=5) == pytest.approx((3 * 1.0 + 0.7, 4))
    assert logged_loss([], up_to=6) == (0.0, 0)


def _session(**changes):
    # What the Trainer reports for a call that resumed at step 6 and ran steps 7-9.
    metrics = {"train_loss": 0.25, "train_runtime": 3.0, "train_samples_per_second": 4.0,
               "train_steps_per_second": 1.0, "total_flos": 1.0, "epoch": 3.0}  # fmt: skip
    return {**metrics, **changes}


def test_whole_run_loss_time_and_throughput():
    metrics = whole_run_metrics(
        _session(), history=HISTORY, resumed_step=6, seconds_before=6.0, global_step=9,
        samples_per_step=4.0,
    )  # fmt: skip
    assert metrics["train_loss"] == pytest.approx((3 * 1.0 + 0.7 + 2 * 0.4 + 3 * 0.25) / 9)
    assert metrics["train_runtime"] == 9.0
    assert metrics["train_samples_per_second"] == 4.0  # 36 samples in 9 s
    assert metrics["train_steps_per_second"] == 1.0
    assert metrics["total_flos"] == 1.0 and metrics["epoch"] == 3.0  # the Trainer's own: whole


def test_a_resume_at_the_last_step_reports_the_run_not_zero():
    # Cut off after its last checkpoint: the rerun trains no step, the Trainer says loss 0.0.
    session = _session(train_loss=0.0, train_runtime=0.01, train_samples_per_second=0.0,
                       train_steps_per_second=0.0)  # fmt: skip
    metrics = whole_run_metrics(
        session, history=HISTORY[:-1], resumed_step=9, seconds_before=8.99, global_step=9,
        samples_per_step=4.0,
    )  # fmt: skip
    assert metrics["train_loss"] == pytest.approx((3 * 1.0 + 0.7 + 2 * 0.4 + 2 * 0.3 + 0.2) / 9)
    assert metrics["train_samples_per_second"] == 4.0


def test_unknown_earlier_time_keeps_this_calls_speed_under_its_own_names():
    metrics = whole_run_metrics(
        _session(), history=HISTORY, resumed_step=6, seconds_before=None, global_step=9,
        samples_per_step=4.0,
    )  # fmt: skip
    assert "train_runtime" not in metrics and metrics["resumed_part_train_runtime"] == 3.0
    assert metrics["resumed_part_train_samples_per_second"] == 4.0
    assert metrics["train_loss"] == pytest.approx((3 * 1.0 + 0.7 + 2 * 0.4 + 3 * 0.25) / 9)


def test_log_at_save_logs_whenever_a_checkpoint_is_due():
    callback = LogAtSave()
    control = TrainerControl(should_save=True)
    assert callback.on_step_end(None, None, control).should_log
    assert callback.on_epoch_end(None, None, TrainerControl(should_save=True)).should_log
    assert not callback.on_step_end(None, None, TrainerControl()).should_log
