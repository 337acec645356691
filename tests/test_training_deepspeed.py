"""deitkit.training.deepspeed: the config helper, and `deitkit finetune` under DeepSpeed ZeRO-2
with two CPU processes (torchrun, gloo on loopback)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageClassification, TrainingArguments

from deitkit.errors import ConfigError
from deitkit.training import deepspeed as ds_module
from deitkit.training.deepspeed import (
    deepspeed_config,
    shipped_config,
    skip_cpu_inference_comm_build,
)

ZERO2 = {
    "zero_optimization": {"stage": 2},
    "fp16": {"enabled": "auto"},
    "bf16": {"enabled": "auto"},
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
}
# The first DeepSpeed run on a machine compiles its shared-memory comm op (about a minute on
# two cores, cached under ~/.cache/torch_extensions); later runs take about 20 s.
TORCHRUN_TIMEOUT_S = 420


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_off_without_either_flag():
    assert deepspeed_config(apply_deepspeed=False, user_file=None) is None


def test_apply_deepspeed_gives_the_shipped_zero1_config():
    config = deepspeed_config(apply_deepspeed=True, user_file=None)

    assert config == shipped_config()
    assert config["zero_optimization"] == {"stage": 1}
    assert config["fp16"] == {"enabled": "auto"} and config["bf16"] == {"enabled": "auto"}
    for key in ("gradient_accumulation_steps", "gradient_clipping", "train_batch_size",
                "train_micro_batch_size_per_gpu"):  # fmt: skip
        assert config[key] == "auto"
    # The Trainer builds --optimizer and --lr-scheduler; DeepSpeed's own would override them.
    assert "optimizer" not in config and "scheduler" not in config


@pytest.mark.parametrize(
    ("precision", "fp16", "bf16"),
    [({}, False, False), ({"bf16": True}, False, True), ({"fp16": True}, True, False)],
    ids=["fp32", "bf16", "fp16"],
)
def test_shipped_auto_values_resolve_from_the_training_arguments(precision, fp16, bf16, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        deepspeed=shipped_config(),
        use_cpu=True,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=3,
        max_grad_norm=0.5,
        report_to=[],
        **precision,
    )

    resolved = args.hf_deepspeed_config.config
    assert "auto" not in json.dumps(resolved)
    assert resolved["fp16"]["enabled"] is fp16 and resolved["bf16"]["enabled"] is bf16
    assert resolved["train_micro_batch_size_per_gpu"] == 4
    assert resolved["gradient_accumulation_steps"] == 3
    assert resolved["train_batch_size"] == 12  # micro batch x accumulation x 1 process
    assert resolved["gradient_clipping"] == 0.5


def test_user_file_is_read_and_wins_over_apply_deepspeed(tmp_path):
    path = _write(tmp_path / "ds.json", json.dumps(ZERO2))

    assert deepspeed_config(apply_deepspeed=False, user_file=str(path)) == ZERO2
    assert deepspeed_config(apply_deepspeed=True, user_file=str(path)) == ZERO2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "not a readable JSON file"),
        ('{"zero_optimization": {"stage": 2}', "not a readable JSON file"),
        ("[1, 2]", "expected a JSON object, got list"),
        (
            '{"zero_optimization": {"stage": 4}}',
            "zero_optimization.stage 4 is not one of 0, 1, 2, 3",
        ),
        ('{"zero_optimization": {"stage": true}}', "zero_optimization.stage True is not one of"),
        ('{"zero_optimization": "fast"}', "zero_optimization must be an object"),
    ],
    ids=["missing", "truncated", "list", "stage-4", "stage-bool", "zero-not-object"],
)
def test_bad_user_file_is_a_config_error_naming_it(text, expected, tmp_path):
    path = tmp_path / "ds.json"
    if text is not None:
        path.write_text(text)

    with pytest.raises(ConfigError, match=r"ds\.json") as err:
        deepspeed_config(apply_deepspeed=False, user_file=str(path))
    assert expected in str(err.value)


def test_missing_deepspeed_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(ds_module, "find_spec", lambda name: None)

    with pytest.raises(
        ConfigError, match=r"--apply-deepspeed needs the deepspeed package.*training"
    ):
        deepspeed_config(apply_deepspeed=True, user_file=None)


def test_cpu_shm_comm_op_is_not_compiled(monkeypatch):
    import deepspeed.ops
    from deepspeed.comm.torch import build_shm_op

    ops = deepspeed.ops.__compatible_ops__
    monkeypatch.setitem(ops, "deepspeed_shm_comm", ops["deepspeed_shm_comm"])  # undone after

    skip_cpu_inference_comm_build()

    # DeepSpeed's comm backend calls this at start-up; None means no C++ build and no shm op.
    assert build_shm_op() is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2` on loopback, CPU only; the whole process group is killed
    on timeout so no worker outlives the test."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]  # fmt: skip
    # DS_ACCELERATOR and an empty CUDA_VISIBLE_DEVICES keep both ranks on the CPU (gloo) even
    # on a GPU machine, where two ranks on one GPU would fail under NCCL.
    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=TORCHRUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun ran past {TORCHRUN_TIMEOUT_S} s:\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, output)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_mlflow_store")  # rank 0 logs there (torchrun passes it on)
def test_finetune_with_a_teacher_under_deepspeed_zero2_on_two_cpu_processes(
    tiny_checkpoint, colour_folders, tmp_path
):
    # One 2-process run covers both: ZeRO-2 across ranks, and a teacher in each process.
    config = _write(tmp_path / "zero2.json", json.dumps(ZERO2))
    out = tmp_path / "out"
    labels = ["blue", "green", "red"]
    student = tiny_checkpoint("deit", distilled=True, labels=labels)
    teacher = tiny_checkpoint("vit", labels=labels, weight_std=0.3)  # each rank loads its own
    flags = ["--epochs", "1", "--train-batch-size", "4", "--precision", "32",
             "--no-augmentations", "--teacher", str(teacher)]  # fmt: skip

    result = _torchrun(
        ["-m", "deitkit.cli.main", "finetune", "--model", str(student),
         "--train", str(colour_folders), "--output", str(out), *flags, "--deepspeed", str(config)],
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:]
    assert result.stdout.count("deitkit.training.teacher: teacher") == 2  # one per rank
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == pytest.approx(1.0) and "eval_accuracy" in metrics
    # Hard distillation of an untrained 3-class student: both terms about ln 3, and so their
    # 0.5/0.5 mix; the loss must not be scaled by the world size.
    assert metrics["train_loss"] < 1.5 * math.log(3)
    # ZeRO partitioned the optimizer state over both ranks: one shard file per rank.
    shards = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*/global_step*/*optim*"))
    assert [s.split("zero_pp_rank_")[1][0] for s in shards] == ["0", "1"], shards
    model = AutoModelForImageClassification.from_pretrained(out / "model")
    assert type(model).__name__ == "DeiTForImageClassificationWithTeacher"
    assert model.config.id2label == {0: "blue", 1: "green", 2: "red"}
    with torch.no_grad():
        logits = model(pixel_values=torch.zeros(2, 3, 16, 16)).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    record = json.loads((out / "model" / "distillation.json").read_text())
    assert record["distilled_from"] == str(teacher) and record["distillation"] == "hard"
