"""deitkit.training.distillation: the losses against hand-computed values, and whole runs with a
teacher (frozen, fed the student's batch; the package serves both heads averaged)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import COLOURS, noisy_square, save_tiny_checkpoint
from transformers import (
    AutoModelForImageClassification,
    DeiTForImageClassification,
    DeiTForImageClassificationWithTeacher,
    ResNetConfig,
    ResNetForImageClassification,
)

from deitkit.errors import ConfigError
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig, resolve
from deitkit.training.distillation import DistillationLoss, heads, served_logits
from deitkit.training.loss import TaskLoss
from deitkit.training.run import build, finetune, save, train
from deitkit.transforms import EvalTransform

# A fixed batch of two images, three classes: the student's two heads and the teacher.
CLS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
DIST = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]])
TEACHER = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
LABELS = torch.tensor([0, 1])
# A distilled student at 16 px: 2 layers, 32 wide.
TINY_DISTILLED = (
    "scratch:deit-tiny-distilled:image_size=16,num_hidden_layers=2,hidden_size=32,"
    "num_attention_heads=4,intermediate_size=64"
)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    log_sum = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - log_sum for v in row]


def _ce(row: list[float], label: int) -> float:
    return -_log_softmax(row)[label]


def _loss(kind: str, alpha: float, tau: float = 1.0, task: Task = Task.MULTICLASS):
    return DistillationLoss(TaskLoss(task), kind=kind, alpha=alpha, tau=tau)


def _outputs():
    return {"logits": (CLS + DIST) / 2, "cls_logits": CLS, "distillation_logits": DIST}


def test_hard_loss_is_ce_on_labels_and_on_the_teachers_argmax():
    # The teacher's argmax: class 1 for image 0, class 0 for image 1.
    label_term = (_ce([2.0, 0.0, -1.0], 0) + _ce([0.5, 1.5, 0.0], 1)) / 2
    teacher_term = (_ce([0.0, 1.0, 0.0], 1) + _ce([1.0, -1.0, 2.0], 0)) / 2
    loss = _loss("hard", alpha=0.5)(_outputs(), LABELS, TEACHER)
    assert loss.item() == pytest.approx(0.5 * label_term + 0.5 * teacher_term, rel=1e-6)


def test_soft_loss_is_kl_at_tau_scaled_by_tau_squared():
    tau, alpha = 2.0, 0.3
    kl = 0.0
    for student, teacher in zip(DIST.tolist(), TEACHER.tolist(), strict=True):
        log_s = _log_softmax([v / tau for v in student])
        log_t = _log_softmax([v / tau for v in teacher])
        kl += sum(math.exp(t) * (t - s) for s, t in zip(log_s, log_t, strict=True))
    teacher_term = kl / 2 * tau**2  # batch mean
    label_term = (_ce([2.0, 0.0, -1.0], 0) + _ce([0.5, 1.5, 0.0], 1)) / 2
    loss = _loss("soft", alpha=alpha, tau=tau)(_outputs(), LABELS, TEACHER)
    assert loss.item() == pytest.approx((1 - alpha) * label_term + alpha * teacher_term, rel=1e-6)


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_multilabel_distills_against_the_teachers_sigmoid(kind):
    tau = 2.0
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    pairs = zip(DIST.flatten().tolist(), TEACHER.flatten().tolist(), strict=True)
    if kind == "hard":
        teacher_term = np.mean([_bce(s, float(t > 0)) for s, t in pairs])
    else:
        teacher_term = np.mean([_bce(s / tau, 1 / (1 + math.exp(-t / tau))) for s, t in pairs])
        teacher_term *= tau**2
    label_term = np.mean(
        [_bce(s, t) for s, t in zip(CLS.flatten().tolist(), labels.flatten().tolist(), strict=True)]
    )
    loss = _loss(kind, alpha=0.5, tau=tau, task=Task.MULTILABEL)(_outputs(), labels, TEACHER)
    assert loss.item() == pytest.approx(0.5 * label_term + 0.5 * teacher_term, rel=1e-6)


def test_a_student_with_one_head_distills_on_it():
    outputs = {"logits": CLS}
    cls_logits, distillation_logits = heads(outputs)
    assert cls_logits is CLS and distillation_logits is CLS
    loss = _loss("hard", alpha=1.0)(outputs, LABELS, TEACHER)
    expected = (_ce([2.0, 0.0, -1.0], 1) + _ce([0.5, 1.5, 0.0], 0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_mixup_targets_reach_the_class_head():
    soft_labels = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    loss = _loss("hard", alpha=0.0)(_outputs(), soft_labels, TEACHER)
    expected = np.mean(
        [
            -sum(p * q for p, q in zip(row, _log_softmax(logits), strict=True))
            for row, logits in zip(soft_labels.tolist(), CLS.tolist(), strict=True)
        ]
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_metrics_see_the_served_logits_of_a_distilled_output():
    served = (CLS + DIST) / 2
    assert served_logits((served, CLS, DIST)) is served
    assert served_logits(CLS) is CLS


# --- whole runs -----------------------------------------------------------------------------


def save_tiny_resnet(folder: Path, labels, *, size: int = 24) -> Path:
    """A random two-stage ResNet with ImageNet's mean/std at `size` px (not the student's 16)."""
    config = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
        num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    ResNetForImageClassification(config).save_pretrained(folder)
    transform = EvalTransform.for_image_size(size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    (folder / "preprocessor_config.json").write_text(json.dumps(transform.to_config()))
    return folder


def _config(data: Path, out: Path, **changes) -> FinetuneConfig:
    options = dict(
        model=TINY_DISTILLED, train=str(data), output=str(out), epochs=1,
        train_batch_size=8, learning_rate=1e-3, augmentations=False, warmup_steps=0,
    )  # fmt: skip
    return FinetuneConfig(**{**options, **changes})


@pytest.mark.usefixtures("shared_mlflow_store")
def test_the_teacher_is_frozen_and_the_student_keeps_both_heads(colour_folders, tmp_path):
    teacher_dir = save_tiny_resnet(tmp_path / "teacher", list(COLOURS))
    config = resolve(_config(colour_folders, tmp_path / "out", teacher=str(teacher_dir),
                             mixup=0.8, distillation="soft", distillation_tau=2.0))  # fmt: skip
    job = build(config)
    teacher = job.trainer.teacher
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    student_before = {k: v.clone() for k, v in job.trainer.model.state_dict().items()}
    seen = []
    teacher.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["pixel_values"].shape), with_kwargs=True
    )

    metrics = train(job)
    save(job, metrics)

    assert seen and seen[0][-2:] == (24, 24)  # its own input size, from the student's 16 px
    assert not teacher.model.training
    for name, value in teacher.model.named_parameters():
        assert not value.requires_grad and value.grad is None, name
        assert torch.equal(value, before[name]), name
    changed = [k for k, v in job.trainer.model.state_dict().items()
               if not torch.equal(v, student_before[k])]  # fmt: skip
    assert any("distillation_classifier" in k for k in changed)
    student = AutoModelForImageClassification.from_pretrained(tmp_path / "out" / "model")
    assert isinstance(student, DeiTForImageClassificationWithTeacher)
    assert "eval_accuracy" in metrics and math.isfinite(metrics["train_loss"])


@pytest.mark.usefixtures("shared_mlflow_store")
def test_a_distilled_package_serves_the_averaged_heads_and_names_its_teacher(
    colour_folders, tmp_path
):
    from deitkit.inference import load_classifier

    teacher = str(save_tiny_checkpoint(tmp_path / "teacher", labels=list(COLOURS)))
    result = finetune(_config(colour_folders, tmp_path / "out", teacher=teacher))

    record = json.loads((result.mlflow_model_dir / "artifacts" / "checkpoint" / "deitkit.json")
                        .read_text())  # fmt: skip
    assert record["distillation"] == {
        "distilled_from": teacher, "distillation": "hard", "distillation_alpha": 0.5,
        "distillation_tau": 1.0, "distillation_token": True,
    }  # fmt: skip
    mlmodel = (result.mlflow_model_dir / "MLmodel").read_text()
    assert "distilled_from" in mlmodel
    classifier = load_classifier(result.mlflow_model_dir, engine="torch", dtype="fp32")
    rng = np.random.default_rng(5)
    images = [noisy_square(rng, colour) for colour in COLOURS.values()]
    probs = classifier.predict_images(images)
    student = DeiTForImageClassificationWithTeacher.from_pretrained(result.model_dir).eval()
    with torch.no_grad():
        out = student(pixel_values=classifier.transform(images))
    manual = torch.softmax((out.cls_logits + out.distillation_logits) / 2, dim=-1)
    np.testing.assert_allclose(probs, manual.numpy(), atol=1e-5)
    assert not np.allclose(probs, torch.softmax(out.cls_logits, dim=-1).numpy(), atol=1e-4)


@pytest.mark.usefixtures("shared_mlflow_store")
def test_without_a_teacher_a_distilled_scratch_student_is_plain_deit(colour_folders, tmp_path):
    result = finetune(_config(colour_folders, tmp_path / "out", max_steps=1))
    model = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert isinstance(model, DeiTForImageClassification)
    assert not (result.model_dir / "distillation.json").exists()


@pytest.mark.parametrize("case", ["other-labels", "fails-to-load", "missing", "soft-alone"])
def test_teacher_problems_are_one_line_errors_before_training(case, colour_folders, tmp_path):
    changes = {
        "other-labels": lambda: {
            "teacher": str(save_tiny_resnet(tmp_path / "t", ["cat", "dog", "fish"]))
        },
        "fails-to-load": lambda: {"teacher": str(_broken_checkpoint(tmp_path / "t"))},
        "missing": lambda: {"teacher": str(tmp_path / "no-such-teacher")},
        "soft-alone": lambda: {"distillation": "soft"},
    }[case]()
    expected = {
        "other-labels": r"--teacher .* was trained on labels \[cat, dog, fish\], the data has "
        r"\[blue, green, red\]",
        "fails-to-load": "--teacher .* cannot be loaded",
        "missing": "--teacher .*no-such-teacher",
        "soft-alone": "--distillation soft needs --teacher",
    }[case]
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=expected) as err:
        finetune(_config(colour_folders, out, **changes))
    assert "\n" not in str(err.value)
    assert not out.exists()  # nothing written: no checkpoints, no config


def _broken_checkpoint(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "resnet", "num_labels": ')
    (folder / "model.safetensors").write_bytes(b"")
    return folder
