"""Resume: a killed run continues from its last complete checkpoint, never a half-written one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deitkit.training.checkpoints import COMPLETE_MARKER, last_complete_checkpoint


def _finetune_cmd(model: Path, data: Path, out: Path, max_steps: int) -> list[str]:
    return [sys.executable, "-m", "deitkit.cli.main", "finetune", "--model", str(model),
            "--train", str(data), "--output", str(out), "--train-batch-size", "4",
            "--learning-rate", "1e-3", "--no-augmentations", "--save-steps", "2",
            "--max-steps", str(max_steps), "--precision", "32"]  # fmt: skip


def test_last_complete_checkpoint_ignores_unmarked_folders(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / COMPLETE_MARKER).write_text(str(step))
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert last_complete_checkpoint(tmp_path / "missing") is None


def _train_and_save(output: Path, begin: int, save: int) -> None:
    """One training session of MarkCompleteCallback: begins at step `begin`, saves at `save`."""
    from types import SimpleNamespace

    from deitkit.training.checkpoints import MarkCompleteCallback

    args = SimpleNamespace(output_dir=str(output))
    state = SimpleNamespace(global_step=begin, is_world_process_zero=True)
    callback = MarkCompleteCallback()
    callback.on_train_begin(args, state, None)
    state.global_step = save
    (output / f"checkpoint-{save}").mkdir()
    callback.on_save(args, state, None)


def test_the_marker_records_the_training_seconds_across_sessions(tmp_path):
    from deitkit.training.checkpoints import recorded_train_seconds

    _train_and_save(tmp_path, 0, 2)
    seconds = recorded_train_seconds(tmp_path / "checkpoint-2")
    assert seconds is not None and seconds >= 0
    assert json.loads((tmp_path / "checkpoint-2" / COMPLETE_MARKER).read_text())["step"] == 2

    _train_and_save(tmp_path, 2, 4)  # a new process, resuming at step 2
    assert recorded_train_seconds(tmp_path / "checkpoint-4") >= seconds


def test_a_marker_without_seconds_leaves_them_unknown(tmp_path):
    from deitkit.training.checkpoints import recorded_train_seconds

    old = tmp_path / "checkpoint-2"
    old.mkdir()
    (old / COMPLETE_MARKER).write_text("2\n")  # as deitkit wrote markers before
    assert recorded_train_seconds(old) is None
    assert recorded_train_seconds(tmp_path / "missing") is None
    _train_and_save(tmp_path, 2, 4)
    assert recorded_train_seconds(tmp_path / "checkpoint-4") is None  # not this call's alone
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"


@pytest.mark.slow
@pytest.mark.usefixtures("shared_mlflow_store")
def test_killed_run_resumes_and_the_step_count_continues(tiny_checkpoint, colour_folders, tmp_path):
    model, out = tiny_checkpoint("deit"), tmp_path / "out"
    env = dict(os.environ)  # MLFLOW_TRACKING_URI: the session's store
    first = subprocess.Popen(_finetune_cmd(model, colour_folders, out, 10_000), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while last_complete_checkpoint(out / "checkpoints") is None:
            assert first.poll() is None, "the first run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        time.sleep(1.0)  # let it get further, possibly into writing the next checkpoint
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = last_complete_checkpoint(out / "checkpoints")
    step = int(killed_at.name.split("-")[1])
    # A checkpoint cut off while being written: newer, partial, no completion marker.
    partial = out / "checkpoints" / f"checkpoint-{step + 100}"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)

    target = step + 4
    done = subprocess.run(_finetune_cmd(model, colour_folders, out, target), env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(killed_at)
    final = json.loads(
        (out / "checkpoints" / f"checkpoint-{target}" / "trainer_state.json").read_text()
    )
    assert final["global_step"] == target
    logged_steps = [entry["step"] for entry in final["log_history"]]
    assert min(logged_steps) <= step < max(logged_steps)  # history from before the kill carried on
    # train_loss is the whole run's: every step's logged loss, before and after the kill.
    losses = [(e["step"], e["loss"]) for e in final["log_history"] if "loss" in e]
    steps = [0] + [s for s, _ in losses]
    assert steps[-1] == target
    mean = sum(loss * (s - p) for (s, loss), p in zip(losses, steps, strict=False)) / target
    assert metrics["train_loss"] == pytest.approx(mean, rel=1e-6)


@pytest.mark.parametrize("model_type", ["deit", "vit", "beit"])
def test_checkpoint_weights_are_restored_despite_renamed_keys(model_type, tiny_checkpoint):
    import safetensors.torch
    import torch
    import transformers

    from deitkit.training.checkpoints import load_checkpoint_weights

    folder = tiny_checkpoint(model_type, labels=["a", "b"])
    saved = transformers.AutoModelForImageClassification.from_pretrained(folder)
    fresh = type(saved)(saved.config)
    assert not torch.equal(fresh.classifier.weight, saved.classifier.weight)
    load_checkpoint_weights(fresh, folder)
    for (name, a), b in zip(fresh.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    on_disk = set(safetensors.torch.load_file(folder / "model.safetensors"))
    if model_type == "deit":  # why the Trainer's own loader is replaced: the names differ
        assert on_disk != set(fresh.state_dict())
