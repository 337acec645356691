"""Fine-tuning round trips on tiny random DeiT, ViT and BEiT checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageClassification, DeiTForImageClassification

from deitkit.errors import ConfigError, DataError
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig
from deitkit.training.run import finetune

# Every run logs to the session's store, except where a test unsets it.
pytestmark = pytest.mark.usefixtures("shared_mlflow_store")
TRAINER_BLOCK = ("epoch", "train_loss", "train_runtime", "train_samples_per_second",
                 "train_steps_per_second", "total_flos")  # fmt: skip


def _run(model: Path | str, data: Path, out: Path, task: Task, **changes):
    options = dict(epochs=2, train_batch_size=8, learning_rate=1e-3, augmentations=False)
    options.update(changes)
    return finetune(
        FinetuneConfig(model=str(model), train=str(data), output=str(out), task=task, **options)
    )


@pytest.mark.parametrize("model_type", ["deit", "vit", "beit"])
def test_multiclass_round_trip(model_type, tiny_checkpoint, colour_folders, tmp_path):
    result = _run(tiny_checkpoint(model_type), colour_folders, tmp_path / "out", Task.MULTICLASS)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(TRAINER_BLOCK) <= set(metrics)
    assert {"eval_accuracy", "eval_f1_score_macro", "eval_AUC_macro", "eval_log_loss"} <= set(
        metrics
    )
    assert metrics["epoch"] == pytest.approx(2.0)
    model = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert model.config.id2label == {0: "blue", 1: "green", 2: "red"}
    assert model.config.problem_type == "single_label_classification"
    logits = model(pixel_values=torch.zeros(2, 3, 16, 16)).logits
    assert logits.shape == (2, 3)
    assert (result.model_dir / "preprocessor_config.json").is_file()
    assert (result.mlflow_model_dir / "MLmodel").is_file()
    saved = json.loads((tmp_path / "out" / "finetune_config.json").read_text())
    assert saved["task"] == "image-classification" and saved["train_batch_size"] == 8


@pytest.mark.parametrize("model_type", ["deit", "vit", "beit"])
def test_multilabel_round_trip(model_type, tiny_checkpoint, colour_multilabel, tmp_path):
    result = _run(tiny_checkpoint(model_type), colour_multilabel, tmp_path / "out", Task.MULTILABEL)
    assert {"eval_iou", "eval_iou_macro", "eval_iou_micro", "eval_iou_weighted"} <= set(
        result.metrics
    )
    model = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert model.config.problem_type == "multi_label_classification"
    assert list(model.config.label2id) == ["blue", "green", "red"]


def test_colour_task_is_learned(tiny_checkpoint, colour_folders, tmp_path):
    result = _run(tiny_checkpoint("deit"), colour_folders, tmp_path / "out", Task.MULTICLASS,
                  epochs=8, learning_rate=3e-3, train_batch_size=4)  # fmt: skip
    assert result.metrics["eval_accuracy"] == 1.0


def test_distilled_checkpoint_loads_into_the_finetunable_class(
    tiny_checkpoint, colour_folders, tmp_path
):
    checkpoint = tiny_checkpoint("deit", distilled=True, labels=[f"c{i}" for i in range(7)])
    result = _run(checkpoint, colour_folders, tmp_path / "out", Task.MULTICLASS, epochs=1)
    model = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert isinstance(model, DeiTForImageClassification)
    assert model.classifier.out_features == 3  # the 7-label head was replaced


def test_resume_with_another_label_map_is_refused(
    tiny_checkpoint, colour_folders, colour_multilabel, tmp_path
):
    out = tmp_path / "out"
    _run(tiny_checkpoint("deit"), colour_folders, out, Task.MULTICLASS, epochs=1)
    with pytest.raises(ConfigError, match="labels"):
        _run(tiny_checkpoint("deit"), colour_multilabel, out, Task.MULTILABEL, epochs=1)


def test_default_tracking_store_lives_in_the_output(
    tiny_checkpoint, colour_folders, tmp_path, monkeypatch
):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    out = tmp_path / "out"
    _run(tiny_checkpoint("deit"), colour_folders, out, Task.MULTICLASS, epochs=2)
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("deitkit-finetune").experiment_id])
    assert run.data.params["task"] == "image-classification"
    assert len(client.get_metric_history(run.info.run_id, "eval_accuracy")) == 2  # per epoch
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "finetune_config.json"} <= artifacts


def test_the_resolved_precision_is_logged_under_one_key(
    tiny_checkpoint, colour_folders, tmp_path, monkeypatch
):
    import mlflow

    from deitkit.training.precision import resolve_precision

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    out = tmp_path / "out"
    result = _run(tiny_checkpoint("deit"), colour_folders, out, Task.MULTICLASS,
                  epochs=1, max_steps=1, precision="fp16")  # fmt: skip
    resolved = resolve_precision("fp16").name  # fp16 on a GPU; bf16 or fp32 on a CPU
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("deitkit-finetune").experiment_id])
    assert run.data.params["precision"] == result.metrics["precision"] == resolved
    assert "precision_resolved" not in run.data.params
    assert json.loads((out / "metrics.json").read_text())["precision"] == resolved
    assert json.loads((out / "finetune_config.json").read_text())["precision"] == "fp16"


def test_empty_training_data_fails_before_training(tiny_checkpoint, tmp_path):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    with pytest.raises(DataError):
        _run(tiny_checkpoint("deit"), empty, tmp_path / "out", Task.MULTICLASS)
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_iou_metric_with_multiclass_fails_before_reading_data(tmp_path):
    with pytest.raises(ConfigError, match="iou"):
        _run("scratch:deit-tiny", tmp_path / "missing", tmp_path / "out", Task.MULTICLASS,
             metric_for_best_model="iou")  # fmt: skip


def test_packaged_model_is_accepted_as_the_starting_model(
    tiny_checkpoint, colour_folders, tmp_path
):
    from deitkit.packaging import package_model

    packaged = package_model(tiny_checkpoint("vit"), tmp_path / "packaged")
    result = _run(packaged, colour_folders, tmp_path / "out", Task.MULTICLASS, epochs=1)
    assert (
        AutoModelForImageClassification.from_pretrained(result.model_dir).config.model_type == "vit"
    )


def test_azureml_tracking_uri_without_its_plugin_falls_back_to_the_output(monkeypatch, tmp_path):
    from deitkit.training.tracking import tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "azureml://eastus.api.azureml.ms/mlflow/v1.0/x")
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


# --- -1 (and no size) is the model's own input size, for every kind of model ------------------

TINY_SCRATCH = (
    "scratch:deit-tiny:image_size=16,num_hidden_layers=2,hidden_size=32,num_attention_heads=4,"
    "intermediate_size=64"
)


def _hub_model(folder: Path, cache: Path, monkeypatch) -> str:
    """`folder` as the hub id `deitkit-tests/tiny` in a Hugging Face cache at `cache` (offline)."""
    import huggingface_hub

    revision = "0" * 40
    repo = cache / "models--deitkit-tests--tiny"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return "deitkit-tests/tiny"


# No size for a local or packaged checkpoint is what the round trips above run.
@pytest.mark.parametrize(
    ("kind", "size"),
    [("scratch", -1), ("scratch", None), ("hub", -1), ("hub", None), ("local", -1),
     ("packaged", -1)],
)  # fmt: skip
def test_minus_one_and_no_size_train_at_the_models_own_size(
    kind, size, tiny_checkpoint, colour_folders, tmp_path, monkeypatch
):
    from deitkit.packaging import package_model

    if kind == "scratch":
        model = TINY_SCRATCH  # its own size: the image_size of the reference, 16
    elif kind == "hub":
        model = _hub_model(tiny_checkpoint("vit"), tmp_path / "hub", monkeypatch)
    elif kind == "local":
        model = str(tiny_checkpoint("vit"))
    else:
        model = str(package_model(tiny_checkpoint("vit"), tmp_path / "packaged"))
    result = _run(model, colour_folders, tmp_path / "out", Task.MULTICLASS,
                  image_size=size, max_steps=1)  # fmt: skip
    trained = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert trained.config.image_size == 16
    preprocessing = json.loads((result.model_dir / "preprocessor_config.json").read_text())
    assert preprocessing["crop_size"] == {"height": 16, "width": 16}


def test_a_pretrained_model_refuses_another_size_before_training(
    tiny_checkpoint, colour_folders, tmp_path
):
    with pytest.raises(ConfigError, match=r"--image-size 32 differs from .*own input size 16x16"):
        _run(tiny_checkpoint("vit"), colour_folders, tmp_path / "out", Task.MULTICLASS,
             image_size=32)  # fmt: skip


def test_no_resume_accepts_a_folder_holding_only_this_runs_config(tmp_path):
    # Under several processes, one rank may have saved the config before another checks OUT.
    from deitkit.training.run import CONFIG_FILE, _holds_only_this_config

    out = tmp_path / "out"
    out.mkdir()
    config = FinetuneConfig(model="scratch:deit-tiny", train="t", output=str(out), resume=False)
    other = FinetuneConfig(model="scratch:deit-tiny", train="t", output=str(out), epochs=3)
    assert _holds_only_this_config(out, config)
    (out / f".{CONFIG_FILE}.123.tmp").write_text("{")  # another rank's save in flight
    assert _holds_only_this_config(out, config)
    config.save(out / CONFIG_FILE)
    assert _holds_only_this_config(out, config)
    other.save(out / CONFIG_FILE)  # a previous run's config: not this run's output
    assert not _holds_only_this_config(out, config)
    config.save(out / CONFIG_FILE)
    (out / "labels.json").write_text('{"task": "image-classification", "labels": ["a"]}')
    assert _holds_only_this_config(out, config)  # check_same_labels judges its content
    (out / "checkpoints").mkdir()
    assert not _holds_only_this_config(out, config)


def test_the_seed_makes_the_initial_weights_repeatable(colour_folders, tmp_path):
    from safetensors.torch import load_file

    def weights(out: Path, seed: int) -> dict:
        _run("scratch:deit-tiny:hidden_size=32,num_hidden_layers=1,num_attention_heads=2,"
             "intermediate_size=64", colour_folders, out, Task.MULTICLASS, image_size=16,
             max_steps=1, epochs=1, seed=seed)  # fmt: skip
        return load_file(out / "model" / "model.safetensors")

    first, again, other = (weights(tmp_path / n, s) for n, s in (("a", 7), ("b", 7), ("c", 8)))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
