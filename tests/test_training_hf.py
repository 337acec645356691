"""Fine-tuning on Hugging Face `datasets` inputs: the same labels and images as class folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hf_helpers import colour_dataset, colour_multilabel_dataset, write_metadata
from transformers import AutoModelForImageClassification

from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig, resolve
from deitkit.training.run import finetune, load_data

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))


def _config(model: Path, train: str, out: Path, task: Task, **changes) -> FinetuneConfig:
    options = dict(epochs=1, train_batch_size=8, learning_rate=1e-3, augmentations=False)
    return FinetuneConfig(
        model=str(model), train=train, output=str(out), task=task, **{**options, **changes}
    )


def _images(dataset) -> list[tuple[bytes, tuple[str, ...]]]:
    return sorted((ex.path.read_bytes(), ex.labels) for ex in dataset.examples)


def _as(layout: str, folders: Path, tmp_path: Path) -> str:
    ds = colour_dataset(folders)
    if layout == "parquet":
        ds.to_parquet(tmp_path / "colours.parquet")
        return str(tmp_path / "colours.parquet")
    if layout == "save-to-disk":
        ds.save_to_disk(tmp_path / "disk")
        return str(tmp_path / "disk")
    write_metadata(folders)
    return str(folders)


@pytest.mark.parametrize("layout", ["parquet", "save-to-disk", "imagefolder-metadata"])
def test_finetune_on_a_hugging_face_layout_matches_class_folders(
    layout, tiny_checkpoint, colour_folders, tmp_path
):
    model = tiny_checkpoint("deit")
    # The class folders' split, read before the metadata file turns them into an imagefolder.
    folders = load_data(
        resolve(_config(model, str(colour_folders), tmp_path / "x", Task.MULTICLASS))
    )
    train = _as(layout, colour_folders, tmp_path)
    config = _config(model, train, tmp_path / "out", Task.MULTICLASS)
    split = load_data(resolve(config))
    assert split[0].layout == layout
    # The same labels, the same images on each side of the seeded split.
    for ours, theirs in zip(split, folders, strict=True):
        assert ours.labels == theirs.labels == ("blue", "green", "red")
        assert _images(ours) == _images(theirs)
    result = finetune(config)
    assert result.metrics["epoch"] == pytest.approx(1.0)
    assert 0.0 <= result.metrics["eval_accuracy"] <= 1.0
    saved = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert saved.config.id2label == {0: "blue", 1: "green", 2: "red"}


def test_finetune_multilabel_through_sequence_of_classlabel(
    tiny_checkpoint, colour_multilabel, tmp_path
):
    colour_multilabel_dataset(colour_multilabel, sequence=True).to_parquet(tmp_path / "m.parquet")
    result = finetune(
        _config(tiny_checkpoint("deit"), str(tmp_path / "m.parquet"), tmp_path / "out",
                Task.MULTILABEL)
    )  # fmt: skip
    assert "eval_iou" in result.metrics
    saved = AutoModelForImageClassification.from_pretrained(result.model_dir)
    assert saved.config.problem_type == "multi_label_classification"
    assert list(saved.config.label2id) == ["blue", "green", "red"]


def test_train_and_validation_splits_of_one_dataset_dict(colour_folders, tmp_path):
    from datasets import DatasetDict

    ds = colour_dataset(colour_folders, image="pixels", label="colour")
    train, test = ds.train_test_split(test_size=6, seed=0, stratify_by_column="colour").values()
    DatasetDict({"train": train, "test": test}).save_to_disk(tmp_path / "dict")
    config = _config(
        Path("scratch:deit-tiny"), str(tmp_path / "dict"), tmp_path / "out", Task.MULTICLASS,
        validation=str(tmp_path / "dict"), image_column="pixels", label_column="colour",
    )  # fmt: skip
    # --train reads train; --validation, with no validation split, its test split.
    train_data, validation_data = load_data(resolve(config))
    assert (len(train_data), len(validation_data)) == (18, 6)
    assert validation_data.examples[0].origin == "test row 0"
