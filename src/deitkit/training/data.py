"""Training data: images decoded once to uint8 tensors, batched and augmented in the collator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from deitkit.data.dataset import ImageDataset
from deitkit.data.importer import validation_indices
from deitkit.images import load_image
from deitkit.transforms import EvalTransform, Resize

# Decoded datasets up to this size stay in memory, so later epochs skip decoding entirely.
CACHE_BYTES = 2 * 2**30


def precrop_transform(transform: EvalTransform) -> EvalTransform:
    """The resize step of `transform` alone: what augmentations crop from (fixed size per image)."""
    resize = transform.resize
    if resize is None:
        return transform
    if resize.shortest_edge is not None:
        edge = resize.shortest_edge
        return dataclasses.replace(transform, crop=(edge, edge))
    return dataclasses.replace(
        transform, resize=Resize(height=resize.height, width=resize.width), crop=None
    )


def encode_targets(dataset: ImageDataset, label2id: dict[str, int]) -> torch.Tensor:
    """Class ids (N,) for multiclass, 0/1 indicators (N, C) float for multilabel."""
    if dataset.task.is_multilabel:
        targets = torch.zeros(len(dataset), len(label2id), dtype=torch.float32)
        for row, example in enumerate(dataset.examples):
            targets[row, [label2id[label] for label in example.labels]] = 1.0
        return targets
    return torch.tensor([label2id[ex.labels[0]] for ex in dataset.examples], dtype=torch.long)


class DecodedImages(torch.utils.data.Dataset):
    """Items `{"image": uint8 (3, H, W), "target": ..., "train": bool}` for the collator."""

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        label2id: dict[str, int],
        transform: EvalTransform,
        train: bool,
    ):
        self.paths = [ex.path for ex in dataset.examples]
        self.targets = encode_targets(dataset, label2id)
        self.transform = precrop_transform(transform)
        self.train = train
        height, width = self.transform.output_size
        self._cache: list[torch.Tensor | None] | None = None
        if len(self.paths) * 3 * height * width <= CACHE_BYTES:
            self._cache = [None] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        image = self._cache[index] if self._cache is not None else None
        if image is None:
            decoded = load_image(self.paths[index], min_size=self.transform.min_size)
            image = self.transform.pixels_uint8([decoded])[0]
            if self._cache is not None:
                self._cache[index] = image
        return {"image": image, "target": self.targets[index], "train": self.train}


class BatchCollator:
    """Stacks items and applies the training augmentation or the evaluation crop per batch.

    The Trainer uses one collator for training and evaluation; each item says which it is.
    """

    def __init__(self, train_augment: Callable, eval_crop: Callable):
        self.train_augment = train_augment
        self.eval_crop = eval_crop

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        images = torch.stack([item["image"] for item in items])
        targets = torch.stack([item["target"] for item in items])
        if items[0]["train"]:
            pixel_values, targets = self.train_augment(images, targets)
        else:
            pixel_values = self.eval_crop(images)
        return {"pixel_values": pixel_values, "labels": targets}


def split_validation(
    dataset: ImageDataset, *, fraction: float, seed: int
) -> tuple[ImageDataset, ImageDataset]:
    """A seeded stratified split of `dataset`, the same one `deitkit data import --split` makes."""
    chosen = set(
        validation_indices(
            [ex.labels for ex in dataset.examples], dataset.task, fraction=fraction, seed=seed
        )
    )
    train = tuple(ex for i, ex in enumerate(dataset.examples) if i not in chosen)
    validation = tuple(ex for i, ex in enumerate(dataset.examples) if i in chosen)
    return (
        dataclasses.replace(dataset, examples=train),
        dataclasses.replace(dataset, examples=validation),
    )
