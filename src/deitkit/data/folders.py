"""The two folder layouts: class folders (`ROOT/<label>/<image>`) and `images/` + `labels.csv`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from deitkit.data.dataset import Example
from deitkit.data.files import not_a_file
from deitkit.data.problems import ProblemLog
from deitkit.data.references import is_ignored, is_image_name, is_inside, resolve_reference
from deitkit.data.text import read_text
from deitkit.errors import DataError

LABELS_CSV = "labels.csv"
IMAGES_DIR = "images"
LABELS_HEADER = ("filename", "labels")


def read_class_folders(root: Path, log: ProblemLog) -> list[Example]:
    """One example per image in each `ROOT/<label>/` folder; the folder name is the label.

    Images directly under ROOT and folders nested inside a label folder are ignored with a
    warning; a label folder without images is an error naming the folder.
    """
    examples: list[Example] = []
    stray: list[str] = []
    for folder in sorted(root.iterdir()):
        if is_ignored(folder):
            continue
        if not folder.is_dir():
            if is_image_name(folder):
                stray.append(folder.name)
            continue
        if not is_inside(folder, root):
            log.error("label folder is a symlink pointing outside the dataset root", path=folder)
            continue
        examples.extend(_read_label_folder(folder, root, log))
    if stray:
        log.warning(
            f"{len(stray)} image(s) directly in the dataset folder ignored (e.g. {stray[0]!r}); "
            "images belong in a folder named after their label",
            path=root,
        )
    return examples


def _read_label_folder(folder: Path, root: Path, log: ProblemLog) -> list[Example]:
    label = folder.name
    examples = []
    nested = []
    refused = 0
    for path in sorted(folder.iterdir()):
        if is_ignored(path):
            continue
        if path.is_dir():
            nested.append(path.name)
        elif is_image_name(path):
            if not is_inside(path, root):
                refused += 1
                log.error("image is a symlink pointing outside the dataset root", path=path)
            elif (why := not_a_file(path)) is not None:
                refused += 1
                log.error(f"image {why}", path=path)
            else:
                examples.append(Example(path, (label,), f"{label}/{path.name}"))
    if not examples and not refused:
        hint = ""
        if nested:
            hint = f"; it holds folders ({', '.join(nested)}): is the dataset root one level down?"
        log.error(
            f"label {label!r} has no images (label folder with no image files{hint})", path=folder
        )
    elif nested:
        log.warning(
            f"sub-folders of label folder {label!r} ignored: {', '.join(nested)}", path=folder
        )
    return examples


def read_multilabel_folder(root: Path, log: ProblemLog) -> list[Example]:
    """One example per row of `ROOT/labels.csv` (`filename,labels`, labels space-separated).

    An empty labels cell means an image with none of the labels (a negative example).
    Images in `ROOT/images/` that no row names are ignored with a warning.

    Raises:
        DataError: when labels.csv is not UTF-8, has no `filename,labels` header, or
            `images/` is missing (entry-level problems go to `log`).
    """
    csv_path = root / LABELS_CSV
    images = root / IMAGES_DIR
    if not images.is_dir():
        raise DataError(f"folder {IMAGES_DIR}/ missing beside {LABELS_CSV}", path=root)
    reader = csv.reader(io.StringIO(read_text(csv_path), newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != LABELS_HEADER:
        raise DataError(
            f"expected the header 'filename,labels', found {','.join(header or [])!r}",
            path=csv_path,
            line=1,
        )
    examples = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            log.error(
                f"expected 2 columns (filename,labels), found {len(row)}: {row!r}",
                path=csv_path,
                line=line,
            )
            continue
        try:
            path = resolve_reference(row[0].strip(), base=images, root=root)
        except DataError as err:
            log.error(err.reason, path=csv_path, line=line)
            continue
        examples.append(Example(path, tuple(row[1].split()), f"{LABELS_CSV}:{line}"))
    listed = {ex.path.name for ex in examples if ex.path.parent == images}
    unlisted = [
        p.name for p in sorted(images.iterdir()) if is_image_name(p) and p.name not in listed
    ]
    if unlisted:
        log.warning(
            f"{len(unlisted)} image(s) in {IMAGES_DIR}/ not listed in {LABELS_CSV}, ignored "
            f"(e.g. {unlisted[0]!r})",
            path=images,
        )
    return examples
