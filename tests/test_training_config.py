"""Every invalid fine-tuning combination fails before training, naming the flag."""

from __future__ import annotations

import dataclasses

import pytest

from deitkit.errors import ConfigError
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig, model_family, resolve


def _config(**changes) -> FinetuneConfig:
    base = FinetuneConfig(
        model="scratch:deit-tiny", train="data", output="out", task=Task.MULTICLASS
    )
    return dataclasses.replace(base, **changes)


def test_defaults_follow_the_model_family_and_task():
    deit = resolve(_config(model="facebook/deit-base-patch16-224"))
    assert (deit.train_batch_size, deit.learning_rate, deit.epochs) == (60, 5e-5, 15)
    assert deit.lr_scheduler == "warmup_cosine"
    assert deit.metric_for_best_model == "accuracy"
    vit = resolve(_config(model="google/vit-base-patch16-224"))
    assert vit.train_batch_size == 72
    beit = resolve(
        _config(
            model="microsoft/beit-base-patch16-224-pt22k-ft22k",
            task="image-classification-multilabel",
        )
    )
    assert beit.train_batch_size == 72 and beit.metric_for_best_model == "iou"
    assert beit.task is Task.MULTILABEL


def test_model_family_reads_hub_ids_and_scratch_refs():
    assert model_family("scratch:deit-tiny") == "deit"
    assert model_family("/ckpt/vit-small") == "vit"
    assert model_family("my-org/resnet") is None


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"task": Task.MULTILABEL, "label_smoothing": 0.1}, "--label-smoothing"),
        (
            {"metric_for_best_model": "iou"},
            "iou metrics exist only for image-classification-multilabel",
        ),
        ({"learning_rate": 0.0}, "--learning-rate must be > 0"),
        ({"learning_rate": -1e-4}, "--learning-rate must be > 0"),
        ({"task": "image-segmentation"}, "unknown task 'image-segmentation'"),
        ({"epochs": 0}, "--epochs"),
        ({"lr_scheduler": "warmup_step"}, "--lr-scheduler 'warmup_step'"),
        ({"precision": "8"}, "--precision '8'"),
        ({"label_smoothing": 1.0}, "--label-smoothing must be in [0, 1)"),
        ({"random_erasing": 1.5}, "--random-erasing"),
        ({"deepspeed_config": "/no/such/ds.json"}, "--deepspeed /no/such/ds.json: no such file"),
        ({"class_weights": "inverse"}, "--class-weights 'inverse'"),
    ],
)
def test_invalid_combinations_fail_with_the_flag_named(changes, flag):
    with pytest.raises(ConfigError) as err:
        resolve(_config(**changes))
    assert flag in str(err.value)
