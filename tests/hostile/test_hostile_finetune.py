"""`deitkit finetune` against an unlucky user: a finished output is never rewritten, and a run
that was killed and resumed reports metrics over the whole run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import save_tiny_checkpoint, write_colour_folders
from transformers import TrainerCallback

from deitkit.cli.main import cli
from deitkit.training.checkpoints import last_complete_checkpoint, recorded_train_seconds
from deitkit.training.config import FinetuneConfig, resolve
from deitkit.training.run import build, finetune, train

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")
OPTIONS = {"train_batch_size": 4, "learning_rate": 1e-3, "augmentations": False,
           "precision": "fp32", "max_steps": 4, "save_steps": 2}  # fmt: skip


def _cli(model: Path, data: Path, out: Path, *extra: str, max_steps=4, save_steps=2):
    """`deitkit finetune` with OPTIONS (but the steps) as flags, then `extra`."""
    args = ["finetune", "--model", str(model), "--train", str(data), "--output", str(out),
            "--train-batch-size", "4", "--learning-rate", "1e-3", "--no-augmentations",
            "--precision", "fp32", "--max-steps", str(max_steps), "--save-steps",
            str(save_steps)]  # fmt: skip
    return CliRunner().invoke(cli, [*args, *extra])


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every path under `folder`: a file's bytes and modification time, None for a folder."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line and not line.startswith("INFO ")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny checkpoint, colour folders, and a finished 4-step fine-tune of them."""
    root = tmp_path_factory.mktemp("finished")
    model = save_tiny_checkpoint(root / "model")
    data = write_colour_folders(root / "colours")
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:  # the session's store (shared_mlflow_store)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp()}/mlflow.db")
        finetune(FinetuneConfig(model=str(model), train=str(data), output=str(out), **OPTIONS))
    return model, data, out


@pytest.mark.timeout(180)
def test_rerunning_a_finished_fine_tune_is_refused_and_changes_no_byte(finished):
    model, data, out = finished
    before = _snapshot(out)
    assert "metrics.json" in before and "checkpoints/checkpoint-4" in before

    for extra in ([], ["--no-resume"]):
        result = _cli(model, data, out, *extra)
        assert result.exit_code == 2, result.output
        (error,) = _errors(result.output)
        assert error.startswith(f"error: --output {out} holds a finished fine-tune")
        assert "--overwrite" in error
    assert _snapshot(out) == before


@pytest.mark.timeout(180)
def test_overwrite_replaces_a_finished_fine_tune(finished, tmp_path):
    model, data, finished_out = finished
    out = tmp_path / "out"
    shutil.copytree(finished_out, out)
    (out / "notes.txt").write_text("the user's, not the run's")
    old_metrics = json.loads((out / "metrics.json").read_text())

    result = _cli(model, data, out, "--overwrite", max_steps=3, save_steps=3)

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-3"]
    assert json.loads((out / "finetune_config.json").read_text())["max_steps"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] is None and metrics["epoch"] != old_metrics["epoch"]
    assert metrics["mlflow_run_id"] != old_metrics["mlflow_run_id"]
    assert (out / "notes.txt").read_text() == "the user's, not the run's"
    assert (out / "mlflow_model" / "MLmodel").is_file()


class _Killed(Exception):
    """Stands in for the kill: the process's state is gone, the checkpoints stay."""


class _KillAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Killed(f"killed at step {state.global_step}")


def _weighted_mean(entries: list[tuple[int, float]], start: int) -> float:
    """The mean loss per step of `(step, loss)` log entries that follow step `start`."""
    total, previous = 0.0, start
    for step, loss in entries:
        total += loss * (step - previous)
        previous = step
    return total / (previous - start)


@pytest.mark.timeout(240)
def test_a_killed_and_resumed_run_reports_the_whole_runs_loss_and_speed(tmp_path):
    model = save_tiny_checkpoint(tmp_path / "model")
    data = write_colour_folders(tmp_path / "colours")
    # Batch 1: 19 steps an epoch, so the loss is logged every 4 steps; checkpoints every 3.
    config = FinetuneConfig(model=str(model), train=str(data), output=str(tmp_path / "out"),
                            **{**OPTIONS, "train_batch_size": 1, "max_steps": 9,
                               "save_steps": 3})  # fmt: skip
    job = build(resolve(config))
    job.trainer.add_callback(_KillAt(7))
    with pytest.raises(_Killed):
        train(job)
    checkpoints = tmp_path / "out" / "checkpoints"
    assert last_complete_checkpoint(checkpoints) == checkpoints / "checkpoint-6"
    seconds_before = recorded_train_seconds(checkpoints / "checkpoint-6")

    metrics = finetune(config).metrics

    assert metrics["resumed_from"] == str(checkpoints / "checkpoint-6")
    state = json.loads((checkpoints / "checkpoint-9" / "trainer_state.json").read_text())
    losses = [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]
    # Every 4th step, and every checkpoint's step: the history covers every step of the run.
    assert [step for step, _ in losses] == [3, 4, 6, 8, 9]
    assert metrics["train_loss"] == pytest.approx(_weighted_mean(losses, 0), rel=1e-6)
    resumed_part = _weighted_mean([e for e in losses if e[0] > 6], 6)
    assert metrics["train_loss"] != pytest.approx(resumed_part, rel=1e-3)
    assert metrics["train_runtime"] > seconds_before > 0
    assert metrics["train_steps_per_second"] == round(9 / metrics["train_runtime"], 3)
