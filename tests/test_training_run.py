"""Fine-tuning round trips on tiny random DeiT, ViT and BEiT checkpoints."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import COLOURS, noisy_square
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForImageClassification, DeiTForImageClassification

from deitkit.errors import ConfigError, DataError
from deitkit.inference.packaged import packaged_checkpoint
from deitkit.models import finetunable_class, load_model
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig
from deitkit.training.run import finetune
from deitkit.transforms import EvalTransform

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
    (out / "metrics.json").unlink()  # cut off before it finished: a run to resume
    with pytest.raises(ConfigError, match="labels"):
        _run(tiny_checkpoint("deit"), colour_multilabel, out, Task.MULTILABEL, epochs=1)


def _finished_output(out: Path, run_id: str = "run-1") -> dict[str, tuple[bytes, int]]:
    """OUT as a finished run leaves it (hand-made); its files' bytes and modification times."""
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (out / "labels.json").write_text('{"task": "image-classification", "labels": ["a", "b"]}')
    (out / "metrics.json").write_text(json.dumps({"train_loss": 0.5, "mlflow_run_id": run_id}))
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_a_finished_output_is_refused_before_the_data_is_read(tmp_path):
    out = tmp_path / "out"
    before = _finished_output(out)
    for changes in ({}, {"resume": False}):
        with pytest.raises(ConfigError, match=r"holds a finished fine-tune .*--overwrite"):
            _run("scratch:deit-tiny", tmp_path / "missing", out, Task.MULTICLASS, **changes)
    after = {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_a_retried_azure_job_leaves_its_own_finished_run_as_it_is(tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = _finished_output(out, run_id="job-run")
    monkeypatch.setenv("MLFLOW_RUN_ID", "job-run")  # MLFLOW_TRACKING_URI: the session's store
    result = _run("scratch:deit-tiny", tmp_path / "missing", out, Task.MULTICLASS)
    assert result.metrics == {"train_loss": 0.5, "mlflow_run_id": "job-run"}
    assert result.mlflow_model_dir == out / "mlflow_model"
    after = {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before
    monkeypatch.setenv("MLFLOW_RUN_ID", "another-job")
    with pytest.raises(ConfigError, match="holds a finished fine-tune"):
        _run("scratch:deit-tiny", tmp_path / "missing", out, Task.MULTICLASS)


def test_overwrite_clears_the_previous_run_only_after_the_checks(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    before = _finished_output(out)
    with pytest.raises(DataError):  # a bad --train: the finished run stays
        finetune(FinetuneConfig(model=str(tiny_checkpoint("deit")), train=str(tmp_path / "no"),
                                output=str(out)), overwrite=True)  # fmt: skip
    after = {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before


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


# --- another size: the checkpoint's position weights resized, trained and served at that size ----


def _served_and_images(package: Path, size: int):
    """`package` loaded as the endpoints load it, and its answers for base64 PNGs of `size` px."""
    from deitkit.inference import load_classifier

    rng = np.random.default_rng(3)
    images = [noisy_square(rng, colour, size=size) for colour in COLOURS.values()]
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    classifier = load_classifier(package, dtype="fp32")
    served = torch.tensor([p.probs for p in classifier.predict_inputs(encoded)])
    return classifier, served, images


@pytest.mark.parametrize(
    ("model_type", "fields", "size"),
    [
        ("deit", {"distilled": True, "image_size": 32, "patch_size": 8}, 48),
        ("vit", {"image_size": 64, "patch_size": 16}, 32),
        ("beit", {"image_size": 32, "patch_size": 8, "use_relative_position_bias": True}, 48),
    ],
)
def test_a_checkpoint_fine_tuned_at_another_size_serves_as_it_interpolated(
    model_type, fields, size, tiny_checkpoint, colour_folders, tmp_path
):
    """The package answers as the checkpoint run at `size` with interpolate_pos_encoding=True.

    One step whose learning rate is 0 (the first step of the warmup) runs the whole job at
    `size` and leaves the weights where they started, so the reference is computed from the
    same weights: the checkpoint's own, at its own size, plus the package's head (new for the
    distilled checkpoint, whose two heads make way for one).
    """
    checkpoint = tiny_checkpoint(model_type, labels=list(COLOURS), weight_std=0.5, **fields)
    result = _run(checkpoint, colour_folders, tmp_path / "out", Task.MULTICLASS,
                  image_size=size, max_steps=1, warmup_steps=1)  # fmt: skip
    classifier, served, images = _served_and_images(result.mlflow_model_dir, size)

    own = EvalTransform.from_pretrained(checkpoint)
    assert classifier.model.config.image_size == size  # runs natively at `size`
    assert classifier.transform == own.scaled_to(size)
    recorded = json.loads((result.model_dir / "preprocessor_config.json").read_text())
    assert recorded["crop_size"] == {"height": size, "width": size}
    reference = finetunable_class(AutoConfig.from_pretrained(checkpoint)).from_pretrained(
        checkpoint
    )
    package_weights = load_file(packaged_checkpoint(result.mlflow_model_dir) / "model.safetensors")
    head = {k: v for k, v in package_weights.items() if k.startswith("classifier.")}
    assert not reference.load_state_dict(head, strict=False).unexpected_keys
    assert reference.config.image_size == fields["image_size"]
    with torch.no_grad():
        pixels = own.scaled_to(size)(images)
        logits = reference.eval()(pixel_values=pixels, interpolate_pos_encoding=True).logits
    torch.testing.assert_close(served, logits.softmax(-1), rtol=0, atol=1e-5)


def test_training_at_another_size_trains_the_resized_weights(
    tiny_checkpoint, colour_folders, tmp_path
):
    checkpoint = tiny_checkpoint("deit", labels=list(COLOURS), image_size=32, patch_size=8)
    result = _run(checkpoint, colour_folders, tmp_path / "out", Task.MULTICLASS,
                  image_size=48, epochs=2, learning_rate=3e-3, train_batch_size=4)  # fmt: skip
    start = load_model(str(checkpoint), labels=list(COLOURS), task=Task.MULTICLASS, image_size=48)
    trained = AutoModelForImageClassification.from_pretrained(result.model_dir).eval()
    classifier, served, images = _served_and_images(result.mlflow_model_dir, 48)

    positions = "deit.embeddings.position_embeddings"
    assert trained.state_dict()[positions].shape == (1, 6 * 6 + 2, 32)  # a 6x6 grid of 8 px
    assert not torch.allclose(trained.state_dict()[positions], start.state_dict()[positions])
    with torch.no_grad():  # no flag: the saved checkpoint is a 48 px model
        logits = trained(pixel_values=classifier.transform(images)).logits
    torch.testing.assert_close(served, logits.softmax(-1), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (8, "--image-size 8 is smaller than the patch size 16 of "),
        (40, "--image-size 40 is not a multiple of the patch size 16 of "),
    ],
)
def test_a_size_the_checkpoint_cannot_take_stops_before_anything_is_written(
    size, message, tiny_checkpoint, colour_folders, tmp_path
):
    from click.testing import CliRunner

    from deitkit.cli.main import cli

    checkpoint = tiny_checkpoint("deit", image_size=32, patch_size=16)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["finetune", "--model", str(checkpoint), "--train",
                                      str(colour_folders), "--output", str(out), "--image-width",
                                      str(size), "--image-height", str(size)])  # fmt: skip
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if not line.startswith("INFO ")]
    assert len(errors) == 1 and errors[0].startswith("error: " + message), result.output
    assert not out.exists()


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


# --- Azure's catalog model (mlflow.transformers) in, through the CLI ----------------------------

CATALOG_LABELS = ["tench", "goldfish", "great_white_shark", "tiger_shark"]  # replaced by 3


def _finetune_cli(*args: str):
    from click.testing import CliRunner

    from deitkit.cli.main import cli

    return CliRunner().invoke(cli, ["finetune", *args], catch_exceptions=False)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}  # fmt: skip


@pytest.mark.parametrize(
    ("task", "layout"),
    [("image-classification", "catalog"), ("image-classification-multilabel", "imported")],
)
def test_the_catalog_model_fine_tunes_through_the_cli(
    task, layout, colour_folders, colour_multilabel, tmp_path
):
    from helpers import azure_model_import, save_catalog_model

    from deitkit.inference import load_classifier

    model = save_catalog_model(tmp_path / "catalog", labels=CATALOG_LABELS)
    if layout == "imported":  # as Azure's model-import step leaves it: model/ flattened
        model = azure_model_import(model, tmp_path / "imported")
    before = _snapshot(model)
    data = colour_folders if task == "image-classification" else colour_multilabel
    out = tmp_path / "out"
    result = _finetune_cli("--model", str(model), "--train", str(data), "--output", str(out),
                           "--task", task, "--epochs", "1", "--train-batch-size", "8",
                           "--no-augmentations")  # fmt: skip

    assert result.exit_code == 0, result.output
    trained = AutoModelForImageClassification.from_pretrained(out / "model")
    assert trained.config.id2label == {0: "blue", 1: "green", 2: "red"}  # the new head
    assert trained.config.model_type == "deit" and trained.config.image_size == 16
    # The catalog model's image processor (components/image_processor/) is what it trained with.
    preprocessing = json.loads((out / "model" / "preprocessor_config.json").read_text())
    assert preprocessing["size"] == {"height": 18, "width": 18}
    assert preprocessing["crop_size"] == {"height": 16, "width": 16}
    classifier = load_classifier(out / "mlflow_model", dtype="fp32")
    assert classifier.labels == ["blue", "green", "red"] and classifier.task.value == task
    assert _snapshot(model) == before  # the user's model folder is only read


@pytest.mark.parametrize(
    ("kind", "message"),
    [("hftransformersv2", "older hftransformersv2 flavor"),
     ("text-classification", "a 'text-classification' model")],
)  # fmt: skip
def test_an_unusable_mlflow_model_fails_finetune_in_one_line_writing_nothing(
    kind, message, colour_folders, tmp_path
):
    from helpers import save_hftransformersv2_model, save_text_classification_model

    if kind == "hftransformersv2":
        model = save_hftransformersv2_model(tmp_path / "model")
    else:
        model = save_text_classification_model(tmp_path / "model")
    out = tmp_path / "out"
    result = _finetune_cli("--model", str(model), "--train", str(colour_folders),
                           "--output", str(out))  # fmt: skip
    assert result.exit_code == 2
    error = result.output.strip()
    assert error.startswith(f"error: --model '{model}': {model / 'MLmodel'}: ") and message in error
    assert "\n" not in error and not out.exists()
