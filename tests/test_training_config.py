"""Every invalid fine-tuning combination fails before training, naming the flag."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from deitkit.cli.finetune import finetune as finetune_command
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


SCRATCH_RECIPE = {"epochs": 30, "train_batch_size": 16, "validation_batch_size": 16,
                  "learning_rate": 3e-4, "warmup_steps": 100, "weight_decay": 0.05,
                  "augmentations": False}  # fmt: skip


def _recipe(config: FinetuneConfig) -> dict:
    return {name: getattr(config, name) for name in SCRATCH_RECIPE}


def test_scratch_models_get_the_from_scratch_defaults():
    for model in ("scratch:deit-tiny", "scratch:vit-base", "scratch:deit-tiny:patch_size=8"):
        assert _recipe(resolve(_config(model=model, task=Task.MULTILABEL))) == SCRATCH_RECIPE
    pretrained = resolve(_config(model="facebook/deit-tiny-patch16-224"))
    assert _recipe(pretrained) == {"epochs": 15, "train_batch_size": 60,
                                   "validation_batch_size": 60, "learning_rate": 5e-5,
                                   "warmup_steps": 0, "weight_decay": 0.0,
                                   "augmentations": True}  # fmt: skip
    assert _recipe(resolve(_config(model="/models/scratch:deit-tiny"))) == _recipe(
        resolve(_config(model="/models/deit-tiny"))
    )  # a folder whose name holds "scratch:" is a checkpoint


def test_explicit_values_win_over_the_from_scratch_defaults():
    given = {"epochs": 2, "train_batch_size": 8, "validation_batch_size": 4,
             "learning_rate": 5e-5, "warmup_steps": 0, "weight_decay": 0.0,
             "augmentations": True}  # fmt: skip
    assert _recipe(resolve(_config(**given))) == given
    flags = ["--epochs", "2", "--train-batch-size", "8", "--validation-batch-size", "4",
             "--learning-rate", "5e-5", "--warmup-steps", "0", "--weight-decay", "0",
             "--augmentations", "true"]  # fmt: skip
    params = _parse(*flags)
    for name in ("image_width", "image_height", "overwrite"):
        params.pop(name)
    assert _recipe(resolve(FinetuneConfig(**{**params, "model": "scratch:deit-tiny"}))) == given


def test_the_quickstart_shares_the_from_scratch_defaults():
    from deitkit import quickstart

    for task, preset in quickstart.TRAINING.items():
        given = {**quickstart.COMMON_TRAINING, **preset}
        config = resolve(_config(model=quickstart.MODELS[task], task=task, **given))
        expected = {**SCRATCH_RECIPE, "validation_batch_size": given["train_batch_size"]}
        assert _recipe(config) == {**expected, **{k: given[k] for k in given if k in expected}}
        assert {"warmup_steps", "weight_decay", "augmentations"}.isdisjoint(given)


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
        ({"distillation": "soft"}, "--distillation soft needs --teacher"),
        ({"distillation": "feature", "teacher": "t"}, "--distillation 'feature'"),
        ({"distillation_alpha": 1.5, "teacher": "t"}, "--distillation-alpha must be in [0, 1]"),
        ({"distillation_tau": 0.0, "teacher": "t"}, "--distillation-tau must be > 0"),
    ],
)
def test_invalid_combinations_fail_with_the_flag_named(changes, flag):
    with pytest.raises(ConfigError) as err:
        resolve(_config(**changes))
    assert flag in str(err.value)


# --- `deitkit finetune`: its options are generated from the fields -------------------------

# The CLI's flags as Azure's component and users pass them; generating them must not change one.
FLAGS = {
    "--model", "--train", "--output", "--task", "--validation", "--image-size", "--image-width",
    "--image-height", "--epochs", "--train-batch-size", "--validation-batch-size",
    "--learning-rate", "--lr-scheduler", "--warmup-steps", "--optimizer", "--weight-decay",
    "--gradient-accumulation-steps", "--precision", "--label-smoothing", "--seed",
    "--max-grad-norm", "--metric-for-best-model", "--early-stopping", "--no-early-stopping",
    "--early-stopping-patience", "--augmentations", "--no-augmentations", "--rand-augment",
    "--no-rand-augment", "--mixup", "--cutmix", "--random-erasing", "--class-weights",
    "--workers", "--apply-deepspeed", "--no-apply-deepspeed", "--deepspeed", "--apply-ort",
    "--no-apply-ort", "--resume", "--no-resume", "--max-steps", "--save-steps",
    "--validation-fraction", "--teacher", "--distillation", "--distillation-alpha",
    "--distillation-tau", "--tune-thresholds", "--no-tune-thresholds", "--calibrate",
    "--no-calibrate", "--config", "--overwrite", "--image-column", "--label-column",
}  # fmt: skip
REQUIRED = ["--model", "m", "--train", "t", "--output", "o"]


def _parse(*args: str) -> dict:
    """The values `deitkit finetune ARGS` hands its callback, without running it."""
    return finetune_command.make_context("finetune", [*REQUIRED, *args]).params


def test_the_flags_and_required_flags_stay_as_they_were():
    options = [p for p in finetune_command.params if isinstance(p, click.Option)]
    assert {flag for o in options for flag in (*o.opts, *o.secondary_opts)} == FLAGS
    assert {o.opts[0] for o in options if o.required} == {"--model", "--train", "--output"}


def test_each_field_is_an_option_with_the_field_default_and_help_text():
    options = {p.name: p for p in finetune_command.params}
    for field in dataclasses.fields(FinetuneConfig):
        option = options[field.name]
        assert option.help, f"--{field.name} has no help text"
        if field.default is dataclasses.MISSING:
            assert option.required, field.name
        else:  # one default: the field's, None where resolve() fills it in
            assert option.default == field.default, field.name
    assert options["task"].default == "image-classification"
    assert options["workers"].default == 0


def test_no_flags_give_the_default_config():
    params = _parse()
    assert params.pop("image_width") is None and params.pop("image_height") is None
    assert params.pop("overwrite") is False
    assert FinetuneConfig(**params) == FinetuneConfig(model="m", train="t", output="o")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--augmentations", "False"], False),
        (["--augmentations", "true"], True),
        (["--no-augmentations"], False),
        (["--augmentations"], True),
        ([], None),  # left to resolve(): on for a checkpoint, off for a scratch model
    ],
)
def test_switches_take_azure_values_and_no_flags(args, expected):
    assert _parse(*args)["augmentations"] is expected


@pytest.mark.parametrize(
    ("value", "name"),
    [("32", "fp32"), ("16", "fp16"), ("bf16", "bf16"), ("auto", "auto"), ("fp32", "fp32")],
)
def test_precision_flag_maps_azure_names_to_training_names(value, name):
    assert _parse("--precision", value)["precision"] == name
    assert resolve(_config(precision=name)).precision == name


def test_precision_flag_refuses_other_values():
    with pytest.raises(click.BadParameter, match="'8' is not one of"):
        _parse("--precision", "8")


def test_the_deepspeed_flag_feeds_deepspeed_config():
    assert _parse("--deepspeed", "ds.json")["deepspeed_config"] == "ds.json"


@pytest.mark.parametrize(
    ("args", "size"),
    [
        ([], None),
        (["--image-width", "64", "--image-height", "64"], 64),
        (["--image-width", "-1", "--image-height", "64"], -1),
        (["--image-size", "32", "--image-width", "32"], 32),
    ],
)
def test_azure_width_and_height_fold_into_image_size(args, size, monkeypatch):
    import deitkit.training.run as run_module

    seen = []
    monkeypatch.setattr(run_module, "finetune", lambda config, **_: seen.append(config) or 1 / 0)
    result = CliRunner().invoke(finetune_command, [*REQUIRED, *args])
    assert isinstance(result.exception, ZeroDivisionError)
    assert seen[0].image_size == size


def test_docs_name_every_flag():
    text = (Path(__file__).parents[1] / "docs" / "finetune.md").read_text()
    flags = [o.opts[0] for o in finetune_command.params if isinstance(o, click.Option)]
    missing = [flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", text)]
    assert not missing, f"docs/finetune.md does not name {missing}"


def test_overwrite_reaches_the_run_and_is_not_a_config_field(monkeypatch):
    import deitkit.training.run as run_module

    seen = []
    monkeypatch.setattr(run_module, "finetune", lambda config, **kw: seen.append(kw) or 1 / 0)
    for args in ([], ["--overwrite"]):
        CliRunner().invoke(finetune_command, [*REQUIRED, *args])
    assert seen == [{"overwrite": False}, {"overwrite": True}]
    assert "overwrite" not in {field.name for field in dataclasses.fields(FinetuneConfig)}
