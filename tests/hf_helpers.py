"""Tiny Hugging Face `datasets` datasets built from the colour folders' own image files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import COLOURS

# Not sorted on purpose: deitkit's label map sorts the ClassLabel names like every layout's.
NAMES = ["red", "blue", "green"]


def colour_rows(folders: Path) -> tuple[list[dict], list[int]]:
    """Every image of the class folders as datasets' Image cells ({bytes, path}) and label ids."""
    images, labels = [], []
    for label in COLOURS:
        for path in sorted((folders / label).iterdir()):
            images.append({"bytes": path.read_bytes(), "path": path.name})
            labels.append(NAMES.index(label))
    return images, labels


def colour_dataset(folders: Path, *, image: str = "image", label: str = "label"):
    """A `datasets.Dataset` with an Image column and a ClassLabel column of the colour folders."""
    from datasets import ClassLabel, Dataset, Features, Image

    images, labels = colour_rows(folders)
    features = Features({image: Image(), label: ClassLabel(names=NAMES)})
    return Dataset.from_dict({image: images, label: labels}, features=features)


def colour_multilabel_dataset(multilabel: Path, *, sequence: bool = False):
    """The images/ + labels.csv colour data as an Image column and a list-of-ClassLabel column."""
    from datasets import ClassLabel, Dataset, Features, Image, List, Sequence

    images, labels = [], []
    with (multilabel / "labels.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            path = multilabel / "images" / row["filename"]
            images.append({"bytes": path.read_bytes(), "path": path.name})
            labels.append([NAMES.index(name) for name in row["labels"].split()])
    kind = Sequence if sequence else List
    features = Features({"image": Image(), "labels": kind(ClassLabel(names=NAMES))})
    return Dataset.from_dict({"image": images, "labels": labels}, features=features)


def write_metadata(folders: Path, *, kind: str = "jsonl", column: str = "label") -> Path:
    """Add imagefolder's metadata.jsonl (or .csv) beside the class folders: file_name + label."""
    rows = [
        {"file_name": f"{label}/{path.name}", column: label}
        for label in COLOURS
        for path in sorted((folders / label).iterdir())
    ]
    target = folders / f"metadata.{kind}"
    if kind == "jsonl":
        target.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        with target.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["file_name", column])
            writer.writeheader()
            writer.writerows(rows)
    return target


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time: proof nothing changed."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }
