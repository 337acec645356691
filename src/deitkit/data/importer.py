"""`deitkit data import`: a dataset zip or folder → images, JSONL annotations, MLTable folders."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deitkit.data.dataset import Example, ImageDataset
from deitkit.data.files import require_file
from deitkit.data.hf_source import HUB, HfOptions, hf_source
from deitkit.data.intake import bring_in, copy_images, not_empty
from deitkit.errors import ConfigError, DataError
from deitkit.tasks import Task, parse_task

TRAIN_JSONL = "train_annotations.jsonl"
VALIDATION_JSONL = "validation_annotations.jsonl"
TRAIN_MLTABLE_DIR = "training-mltable-folder"
VALIDATION_MLTABLE_DIR = "validation-mltable-folder"
# Azure's fine-tuning samples send every 5th image to validation.
EVERY_NTH = 5
# The MLTable Azure's image-classification samples write beside each annotations file.
MLTABLE_TEMPLATE = """\
paths:
  - file: ./{jsonl}
transformations:
  - read_json_lines:
      encoding: utf8
      invalid_lines: error
      include_path_column: false
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
"""
_RESERVED = frozenset({TRAIN_JSONL, VALIDATION_JSONL, TRAIN_MLTABLE_DIR, VALIDATION_MLTABLE_DIR})


@dataclass(frozen=True)
class ImportResult:
    """What `import_dataset` wrote; `data_dir` is the folder the images were extracted to."""

    out_dir: Path
    train_jsonl: Path
    validation_jsonl: Path
    train_mltable: Path
    validation_mltable: Path
    n_train: int
    n_validation: int
    labels: tuple[str, ...]
    task: Task
    data_dir: Path

    def validation_images(self, count: int | None = None) -> list[Path]:
        """The first `count` (default all) validation image files, in annotation order."""
        lines = self.validation_jsonl.read_text(encoding="utf-8").splitlines()[:count]
        return [self.out_dir / json.loads(line)["image_url"] for line in lines]


def import_dataset(
    source: str | Path,
    out_dir: str | Path,
    *,
    split: float | None = None,
    seed: int = 42,
    task: str | Task | None = None,
    hf: HfOptions | None = None,
) -> ImportResult:
    """Bring a dataset zip, folder or Hugging Face dataset into `out_dir` and write Azure ML's
    annotation files for it.

    A zip (class folders or `images/` + `labels.csv`, optionally inside one top folder) is
    extracted safely to `OUT/<top folder or zip name>/` (see `extract_zip` for its caps); a
    dataset folder in either layout is copied to `OUT/<folder name>/` (see `intake.bring_in`:
    regular files, folders, and links that stay inside it), so the annotations never point into (or
    change) the user's own folder. Then, as Azure's fine-tuning
    samples do, `OUT/train_annotations.jsonl` and `OUT/validation_annotations.jsonl`
    (image_url relative to OUT) and the MLTable folders `OUT/training-mltable-folder/` and
    `OUT/validation-mltable-folder/` (a copy of the JSONL with image_url relative to that
    folder, and an `MLTable` file) are written. A failed import removes everything it wrote.

    Args:
        source: The dataset archive (`.zip`) or folder, or a Hugging Face dataset (a folder or
            file, `PATH:split`, or a hub id).
        out_dir: The folder to write; it must not exist or be empty.
        split: None: every 5th image (in natural path order) goes to validation, as in Azure's
            samples. A fraction in (0, 1): a seeded split stratified by label (see
            `validation_indices`).
        seed: Seeds the stratified split.
        task: The expected task; None: detected from the layout.
        hf: A Hugging Face dataset's columns and split (default: detected, `train`); its
            images (embedded bytes or files) are copied to `OUT/<name>/`.

    Returns:
        The paths written, the image counts per split, the labels and the task.

    Raises:
        ConfigError: `split` is outside (0, 1) or `task` is unknown.
        DataError: `out_dir` is not empty or lies inside the source folder, the source is not a
            folder or regular file, the zip is unsafe or unreadable, the folder holds what
            cannot be copied, the dataset is invalid, or the split leaves either side empty.
    """
    if split is not None and not 0.0 < split < 1.0:
        raise ConfigError(f"split {split} must be a validation fraction between 0 and 1")
    expected = parse_task(task) if task is not None else None
    hf_input = hf_source(source)
    source, out = Path(hf_input.location if hf_input else source), Path(out_dir)
    if not source.is_dir() and (hf_input is None or hf_input.layout != HUB):
        require_file(source)  # a FIFO named data.zip would block the import forever
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(not_empty(out), path=out)
    if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
        raise DataError(f"refusing to import: the output {out} lies inside it", path=source)
    existed = out.exists()
    try:
        from deitkit.data.formats import read_dataset

        if hf_input is not None:
            dataset = read_dataset(
                hf_input.location + (f":{hf_input.split}" if hf_input.split else ""),
                task=expected,
                hf=hf,
            )
            dataset, data_dir = copy_images(dataset, out, _data_name(source), reserved=_RESERVED)
        else:
            data_dir = bring_in(source, out, reserved=_RESERVED)
            dataset = read_dataset(data_dir, task=expected)
        return _write_annotations(dataset, source, out, data_dir, split, seed)
    except BaseException:
        # `out` was empty or absent on entry, so all it holds now is ours.
        if existed:
            for child in out.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _data_name(source: Path) -> str:
    """The folder the images of a Hugging Face input go to: its folder's or file's name."""
    return source.stem if source.suffix.lower() in (".parquet", ".arrow") else source.name


def validation_indices(
    label_sets: Sequence[tuple[str, ...]],
    task: Task,
    *,
    fraction: float | None = None,
    seed: int = 42,
) -> list[int]:
    """Pick which examples go to validation, in ascending order.

    Args:
        label_sets: Each example's labels, in a stable order.
        task: Multiclass stratifies on the label; multilabel on each example's rarest label
            (the least frequent of its labels over the dataset), a common proxy because
            label sets themselves are too many and too sparse to stratify on.
        fraction: None: every 5th example (index % 5 == 0). Otherwise the fraction of each
            stratum sent to validation by scikit-learn's `train_test_split`; examples whose
            stratum has a single member stay in training.
        seed: Seeds the stratified split.

    Raises:
        DataError: The fraction is too small or too large to give every stratum a place.
    """
    if fraction is None:
        return list(range(0, len(label_sets), EVERY_NTH))
    if task.is_multilabel:
        counts = Counter(label for labels in label_sets for label in labels)
        # Images with no label at all form a stratum of their own ("").
        keys = [
            min(labels, key=lambda lb: (counts[lb], lb)) if labels else "" for labels in label_sets
        ]
    else:
        keys = [labels[0] for labels in label_sets]
    per_key = Counter(keys)
    candidates = [i for i, key in enumerate(keys) if per_key[key] >= 2]
    if not candidates:
        return []
    from sklearn.model_selection import train_test_split

    try:
        _, validation = train_test_split(
            candidates,
            test_size=fraction,
            random_state=seed,
            stratify=[keys[i] for i in candidates],
        )
    except ValueError as exc:
        strata = len({keys[i] for i in candidates})
        raise DataError(
            f"cannot split {len(candidates)} images in {strata} strata with a validation "
            f"fraction of {fraction:g}: {exc}; choose a fraction that leaves every label at "
            "least one image on each side"
        ) from None
    return sorted(validation)


def _write_annotations(
    dataset: ImageDataset,
    source: Path,
    out: Path,
    data_dir: Path,
    split: float | None,
    seed: int,
) -> ImportResult:
    out_abs = out.absolute()
    rows = [(_relative_url(ex, dataset.root, out_abs), ex) for ex in dataset.examples]
    rows.sort(key=lambda row: _natural_key(row[0]))  # stable, whatever order the reader used
    chosen = set(
        validation_indices([ex.labels for _, ex in rows], dataset.task, fraction=split, seed=seed)
    )
    train = [row for i, row in enumerate(rows) if i not in chosen]
    validation = [row for i, row in enumerate(rows) if i in chosen]
    for side, part in (("training", train), ("validation", validation)):
        if not part:
            raise DataError(
                f"the split leaves the {side} set empty ({len(rows)} images in all); "
                "add images or choose another --split",
                path=source,
            )
    multilabel = dataset.task.is_multilabel
    paths = {}
    for part, jsonl, folder in (
        (train, TRAIN_JSONL, TRAIN_MLTABLE_DIR),
        (validation, VALIDATION_JSONL, VALIDATION_MLTABLE_DIR),
    ):
        _write_atomically(out / jsonl, _jsonl(part, "", multilabel))
        (out / folder).mkdir()
        _write_atomically(out / folder / jsonl, _jsonl(part, "../", multilabel))
        _write_atomically(out / folder / "MLTable", MLTABLE_TEMPLATE.format(jsonl=jsonl))
        paths[jsonl] = (out / jsonl, out / folder)
    return ImportResult(
        out_dir=out,
        train_jsonl=paths[TRAIN_JSONL][0],
        validation_jsonl=paths[VALIDATION_JSONL][0],
        train_mltable=paths[TRAIN_JSONL][1],
        validation_mltable=paths[VALIDATION_JSONL][1],
        n_train=len(train),
        n_validation=len(validation),
        labels=dataset.labels,
        task=dataset.task,
        data_dir=data_dir,
    )


def _natural_key(url: str) -> tuple[list[str | int], str]:
    """Order `2.jpg` before `10.jpg`, as a person numbering images would."""
    # re.split with a group alternates text and digits, so the same positions compare alike.
    parts = re.split(r"(\d+)", url)
    return [int(part) if i % 2 else part for i, part in enumerate(parts)], url


def _relative_url(example: Example, root: Path, out_abs: Path) -> str:
    path = example.path if example.path.is_absolute() else root / example.path
    url = Path(os.path.relpath(path.absolute(), out_abs)).as_posix()
    if url.startswith("../"):
        raise DataError(f"image lies outside the output folder {out_abs}", path=path)
    return url


def _jsonl(rows: list[tuple[str, Example]], prefix: str, multilabel: bool) -> str:
    lines = []
    for url, ex in rows:
        label: str | list[str] = list(ex.labels) if multilabel else ex.labels[0]
        lines.append(json.dumps({"image_url": prefix + url, "label": label}, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
