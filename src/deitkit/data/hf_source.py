"""Which Hugging Face `datasets` input a path names: save_to_disk, parquet, arrow, imagefolder, hub.

Detection only looks at names on disk; it never imports `datasets`, so deitkit reads every
other layout without the extra installed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from deitkit.data.references import is_ignored, is_image_name

SAVE_TO_DISK = "save-to-disk"
PARQUET = "parquet"
ARROW = "arrow"
IMAGEFOLDER = "imagefolder-metadata"
HUB = "hub"
HF_LAYOUTS = (SAVE_TO_DISK, PARQUET, ARROW, IMAGEFOLDER, HUB)

# Which split of a multi-split dataset each use reads when PATH:split names none.
TRAIN_SPLITS = ("train",)
VALIDATION_SPLITS = ("validation", "valid", "val", "dev", "test")
TEST_SPLITS = ("test", "validation", "valid", "val", "dev")

# `load_dataset("imagefolder")` reads these beside the images (or in a split folder under them).
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")
# save_to_disk writes dataset_dict.json (a DatasetDict) or state.json + dataset_info.json.
_DISK_MARKERS = ("dataset_dict.json", "state.json")
# `name` or `owner/name`, as the Hub spells repository ids; `hf://datasets/` may lead.
_HUB_ID = re.compile(r"(?:hf://datasets/)?(?P<id>[\w.-]+(?:/[\w.-]+)?)")
_HUB_PREFIX = "hf://datasets/"
_FILE_SUFFIXES = (".zip", ".jsonl", ".csv", ".parquet", ".arrow", ".json", "mltable")


@dataclass(frozen=True)
class HfOptions:
    """How to read a `datasets` input: its columns (None: detected) and split preference.

    `splits` is the order of split names tried when a dataset has several and PATH:split
    names none: TRAIN_SPLITS for --train, VALIDATION_SPLITS for --validation, TEST_SPLITS
    for evaluation.
    """

    image_column: str | None = None
    label_column: str | None = None
    splits: tuple[str, ...] = TRAIN_SPLITS


@dataclass(frozen=True)
class HfSource:
    """A `datasets` input: its layout, where it is (a path, or a hub id) and the split named."""

    layout: str
    location: str
    split: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.location)


def hf_source(text: str | os.PathLike) -> HfSource | None:
    """The `datasets` input `text` names, or None when it is none of them.

    `PATH:split` names a split when PATH exists and PATH:split does not; a string that is no
    path on disk but looks like a hub id (`owner/name`, `hf://datasets/owner/name`, with an
    optional `:split`) is a hub dataset.
    """
    text = os.fspath(text)
    if os.path.lexists(text):
        layout = _local_layout(Path(text))
        return HfSource(layout, text) if layout else None
    head, sep, split = text.rpartition(":")
    if sep and split and os.path.lexists(head) and "/" not in split:
        layout = _local_layout(Path(head))
        return HfSource(layout, head, split) if layout else None
    name, split = (head, split) if sep and head and "/" not in split else (text, "")
    match = _HUB_ID.fullmatch(name)
    if match is None or name.startswith((".", "/")) or name.lower().endswith(_FILE_SUFFIXES):
        return None  # a missing file: the layout check says it does not exist
    if not name.startswith(_HUB_PREFIX) and "/" not in name:
        return None  # a bare word is far likelier a mistyped file than a legacy hub id
    return HfSource(HUB, match.group("id"), split or None)


def _local_layout(path: Path) -> str | None:
    if not path.is_dir():
        suffix = path.suffix.lower()
        return {".parquet": PARQUET, ".arrow": ARROW}.get(suffix)
    if any((path / marker).is_file() for marker in _DISK_MARKERS):
        return SAVE_TO_DISK
    if _metadata_files(path):
        return IMAGEFOLDER
    for suffix, layout in ((".parquet", PARQUET), (".arrow", ARROW)):
        if data_files(path, suffix):
            return layout
    return None


def _metadata_files(folder: Path) -> list[Path]:
    """imagefolder metadata files in `folder` or one folder down (split folders: train/...)."""
    found = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    for child in _children(folder):
        if child.is_dir():
            found += [child / name for name in METADATA_FILES if (child / name).is_file()]
    return found


def data_files(folder: Path, suffix: str) -> list[Path]:
    """`*.suffix` files up to two folders down (`data/train-*.parquet`), in a folder of no images.

    A folder of images (class folders) that happens to hold a parquet file stays class folders.
    """
    found: list[Path] = []
    level = [folder]
    for _ in range(3):
        next_level = []
        for parent in level:
            for child in _children(parent):
                if child.is_dir():
                    next_level.append(child)
                elif is_image_name(child):
                    return []
                elif child.suffix.lower() == suffix:
                    found.append(child)
        level = next_level
    return sorted(found)


def _children(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if not is_ignored(child)]
    except OSError:
        return []
