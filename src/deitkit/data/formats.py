"""The dataset inputs, detected automatically and read into one ImageDataset.

Azure ML's five (class folders, images/ + labels.csv, JSONL, MLTable, zip) and Hugging Face
`datasets`' (save_to_disk folders, parquet and arrow files, imagefolder with metadata, hub ids;
see `hf_source`, read with the optional `datasets` library by `hf_read`).

Roots (the folder nothing may be read outside of): a folder layout's own folder; a JSONL
file's folder; an MLTable folder's parent (Azure's samples put `training-mltable-folder/`
beside the images and refer to `../fridgeObjects/can/1.jpg`); for a zip, the folder found
inside its extracted copy, which lives in the cache (`$DEITKIT_CACHE`, else
`~/.cache/deitkit`), never beside the user's data.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from deitkit.cache import cache_dir
from deitkit.data.dataset import Example, ImageDataset
from deitkit.data.datastore import datastore_for
from deitkit.data.files import not_a_file
from deitkit.data.folders import LABELS_CSV, read_class_folders, read_multilabel_folder
from deitkit.data.hf_source import HF_LAYOUTS, HfOptions, hf_source
from deitkit.data.jsonl import read_jsonl
from deitkit.data.mltable import MLTABLE_FILE, read_mltable_spec
from deitkit.data.problems import Problem, ProblemLog
from deitkit.data.references import is_ignored, is_image_name, is_inside
from deitkit.errors import DataError
from deitkit.tasks import Task, parse_task

logger = logging.getLogger(__name__)

LAYOUTS = ("class-folders", "multilabel-folder", "jsonl", "mltable", "zip", *HF_LAYOUTS)
_EXPECTED = (
    "expected a folder of class folders (ROOT/<label>/<image>), a folder with images/ and "
    "labels.csv, a .jsonl annotation file, an MLTable folder, a .zip of the folder layouts, "
    "or a Hugging Face dataset (save_to_disk folder, parquet or arrow files, imagefolder with "
    "metadata.jsonl/csv, hub id)"
)


def detect_layout(path: str | Path) -> str:
    """Name the layout of `path`: one of LAYOUTS.

    Raises:
        DataError: when `path` does not exist or matches no layout, saying what was expected.
    """
    # Before the folder layouts: imagefolder with metadata has folders of images too.
    if (source := hf_source(path)) is not None:
        return source.layout
    path = Path(path)
    if not path.is_dir():
        # A FIFO is named by what it is and never opened: reading one waits for a writer.
        if (why := not_a_file(path)) is not None:
            raise DataError(f"{why}; {_EXPECTED}", path=path)
        suffix = path.suffix.lower()
        if path.name == MLTABLE_FILE:
            return "mltable"
        if suffix in (".zip", ".jsonl"):
            return suffix[1:]
        raise DataError(f"not a dataset file; {_EXPECTED}", path=path)
    # lexists: a labels.csv that is a FIFO or a broken link still picks the layout, and its
    # reader then says what is wrong with it.
    if os.path.lexists(path / MLTABLE_FILE):
        return "mltable"
    if os.path.lexists(path / LABELS_CSV):
        return "multilabel-folder"
    children = [child for child in path.iterdir() if not is_ignored(child)]
    if any(child.is_dir() for child in children):
        return "class-folders"
    found = ""
    if jsonl := sorted(c.name for c in children if c.suffix.lower() == ".jsonl"):
        found = f" (found {', '.join(jsonl)}: pass the .jsonl file itself)"
    elif any(is_image_name(c) for c in children):
        found = " (found images but no label folders or labels.csv)"
    raise DataError(f"no dataset layout found{found}; {_EXPECTED}", path=path)


def read_dataset(
    path: str | Path, *, task: Task | str | None = None, hf: HfOptions | None = None
) -> ImageDataset:
    """Read any of the inputs; warnings (duplicates, ignored files) are logged.

    Args:
        path: a folder, a .jsonl file, an MLTable folder (or its MLTable file), a .zip, or a
            Hugging Face dataset (a folder or file, `PATH:split`, or a hub id).
        task: the expected task; None infers it (lists of labels or labels.csv: multilabel).
            Multiclass with an image that has no label or several is an error; multilabel
            on single-label data gives each image a one-label list.
        hf: For Hugging Face datasets: columns and the split preference (default: detected
            columns, the `train` split).

    Raises:
        DataError: for the first problem, naming its file (and line), with the count of others.
    """
    dataset, problems = read_dataset_with_problems(path, task=task, hf=hf)
    log = ProblemLog(problems)
    log.raise_if_errors()
    for warning in log.warnings:
        logger.warning("%s", warning)
    return dataset


def read_dataset_with_problems(
    path: str | Path, *, task: Task | str | None = None, hf: HfOptions | None = None
) -> tuple[ImageDataset, list[Problem]]:
    """Read like read_dataset, but return the usable examples and every problem found.

    Entry-level problems (a missing image, a bad line, conflicting duplicates) are collected
    and their entries left out; problems that make the input unreadable as a whole (no
    layout, a file that is not UTF-8, an MLTable that is not YAML) still raise DataError.
    """
    requested = parse_task(task) if task is not None else None
    if (source := hf_source(path)) is not None:
        from deitkit.data.hf_read import read_hf

        log = ProblemLog()
        root, examples, multilabel = read_hf(source, hf or HfOptions(), log)
        dataset = _assemble(examples, multilabel, requested, root, source.layout, log)
        return dataset, log.problems
    path = Path(os.path.normpath(Path(path).absolute()))
    layout = detect_layout(path)
    log = ProblemLog()
    if layout == "zip":
        path = _dataset_folder(_extracted(path))
        layout = detect_layout(path)
        if layout not in ("class-folders", "multilabel-folder"):
            # An MLTable's root is its parent folder: here the shared cache of other zips.
            raise DataError(
                f"the zip holds an {layout} folder; a zip must hold class folders or "
                "images/ + labels.csv",
                path=path,
            )
    root, examples, multilabel = _read(path, layout, log)
    dataset = _assemble(examples, multilabel, requested, root, layout, log)
    return dataset, log.problems


def _read(path: Path, layout: str, log: ProblemLog) -> tuple[Path, list[Example], bool]:
    """The dataset root, the raw examples, and whether the input itself is multilabel."""
    if layout == "class-folders":
        return path, read_class_folders(path, log), False
    if layout == "multilabel-folder":
        return path, read_multilabel_folder(path, log), True
    if layout == "jsonl":
        datastore = datastore_for([path], path.parent)
        rows = read_jsonl(path, root=path.parent, log=log, datastore=datastore)
        return path.parent, rows.examples, rows.multilabel
    folder = path if path.is_dir() else path.parent
    spec = read_mltable_spec(folder)
    root = folder.parent
    examples, multilabel = [], False
    for jsonl in spec.jsonl_files:
        if not is_inside(jsonl, root):
            raise DataError(f"{jsonl} lies outside the dataset root {root}", path=spec.file)
    datastore = datastore_for(spec.jsonl_files, root)
    for jsonl in spec.jsonl_files:
        rows = read_jsonl(
            jsonl, root=root, log=log, invalid_lines=spec.invalid_lines, datastore=datastore
        )
        examples.extend(rows.examples)
        multilabel = multilabel or rows.multilabel
    return root, examples, multilabel


def _assemble(
    examples: list[Example],
    multilabel: bool,
    requested: Task | None,
    root: Path,
    layout: str,
    log: ProblemLog,
) -> ImageDataset:
    task = requested or (Task.MULTILABEL if multilabel else Task.MULTICLASS)
    kept: dict[str, Example] = {}
    for example in examples:
        example = Example(example.path, tuple(sorted(set(example.labels))), example.origin)
        if task is Task.MULTICLASS and len(example.labels) != 1:
            path, line = _locate(example, root)
            log.error(
                f"task {task} needs exactly one label per image, found {len(example.labels)}"
                f" {list(example.labels)}; use --task {Task.MULTILABEL} for several",
                path=path,
                line=line,
            )
            continue
        key = os.path.realpath(example.path)
        first = kept.setdefault(key, example)
        if first is example:
            continue
        path, line = _locate(example, root)
        if first.labels == example.labels:
            log.warning(
                f"duplicate entry for the image of {first.origin}; kept that one",
                path=path,
                line=line,
            )
        else:
            log.error(
                f"conflicting labels for {example.path.name}: {first.origin} says "
                f"{list(first.labels)}, {example.origin} says {list(example.labels)}",
                path=path,
                line=line,
            )
    labels = tuple(sorted({label for ex in kept.values() for label in ex.labels}))
    if not kept and not log.errors:
        log.error(f"no images found; {_EXPECTED}", path=root)
    if task is Task.MULTICLASS and len(labels) == 1:
        log.warning(f"only one label ({labels[0]!r}): a classifier needs at least two", path=root)
    return ImageDataset(tuple(kept.values()), labels, task, root, layout)


def _locate(example: Example, root: Path) -> tuple[Path, int | None]:
    """The file and line an example came from: origins are `rel/path` or `rel/file.jsonl:N`."""
    name, sep, line = example.origin.rpartition(":")
    if sep and line.isdigit():
        return root / name, int(line)
    return example.path, None


def _extracted(zip_path: Path) -> Path:
    """Extract `zip_path` once into the cache, keyed by its SHA-256; later reads reuse it."""
    from deitkit.data.archive import extract_zip

    digest = hashlib.sha256()
    with zip_path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    dest = cache_dir() / "extracted" / digest.hexdigest()
    # extract_zip renames a finished staging folder into place, so a folder there is complete.
    if dest.is_dir() and any(dest.iterdir()):
        return dest
    try:
        extract_zip(zip_path, dest)
    except OSError:
        if not (dest.is_dir() and any(dest.iterdir())):  # not another process finishing first
            raise
    return dest


def _dataset_folder(folder: Path) -> Path:
    """Descend through lone wrapper folders (`fridgeObjects/`) that hold no images themselves."""
    while True:
        children = [c for c in folder.iterdir() if not is_ignored(c)]
        if len(children) != 1 or not children[0].is_dir():
            return folder
        if any(is_image_name(c) for c in children[0].iterdir()):
            return folder  # a lone label folder: let the reader say what is wrong
        folder = children[0]
