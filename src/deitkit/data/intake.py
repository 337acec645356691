"""Bringing a dataset into an import's output: a folder copied, a zip extracted, images copied."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from deitkit.cache import cache_dir
from deitkit.data.archive import extract_zip
from deitkit.data.dataset import Example, ImageDataset
from deitkit.data.files import not_a_file
from deitkit.data.references import is_ignored, is_image_name
from deitkit.errors import DataError

_EXTRACTING = ".extracting"  # the zip's staging folder inside OUT; a killed import leaves it
_COPIED = "data import copies regular files, folders and links that stay inside the folder"
_MAX_WRAPPERS = 8


def bring_in(source: Path, out: Path, *, reserved: frozenset[str]) -> Path:
    """Copy the folder or extract the zip `source` into `out/<name>`; that folder.

    `<name>` is the folder's name, or the zip's top folder (lone wrapper folders unwrapped) or
    its file name, or `data` where that name is hidden or one of `reserved`.

    Raises:
        DataError: the zip is refused (see `extract_zip`) or the folder holds what cannot be
            copied (see `_copy_tree`), naming the entry.
    """
    if source.is_dir():
        return _copy_folder(source, out, reserved)
    return _extract(source, out, reserved)


def copy_images(
    dataset: ImageDataset, out: Path, name: str, *, reserved: frozenset[str]
) -> tuple[ImageDataset, Path]:
    """Copy a read dataset's images to `out/<name>/`; the dataset as read there, and that folder.

    For Hugging Face inputs, whose images are embedded bytes (written to the cache when read)
    or files the dataset names. A file inside the dataset's root keeps its path below it (an
    imagefolder's own tree); an image from the cache keeps its name (`<split>-<row>.png`).
    """
    if name in reserved or name.startswith(".") or not name:
        name = "data"
    data_dir = out / name
    data_dir.mkdir(parents=True)
    examples = []
    root, cache = Path(os.path.realpath(dataset.root)), Path(os.path.realpath(cache_dir()))
    for example in dataset.examples:
        real = Path(os.path.realpath(example.path))
        own = real.is_relative_to(root) and not real.is_relative_to(cache)
        target = data_dir / (real.relative_to(root) if own else real.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, target)
        examples.append(Example(target, example.labels, example.origin))
    return dataclasses.replace(dataset, examples=tuple(examples), root=data_dir), data_dir


def not_empty(out: Path) -> str:
    """Why `out` cannot take an import, naming what is in it (and a stopped import's staging)."""
    if not out.is_dir():
        return "refusing to import: the output exists and is not a folder"
    names = sorted(child.name for child in out.iterdir())
    staging = [name for name in names if name.lstrip(".").startswith(_EXTRACTING.lstrip("."))]
    if staging:
        return (
            f"refusing to import: the output is not empty: it holds {', '.join(staging)}, the "
            "staging folder of an import that was stopped before it finished; delete "
            f"{out} and import again"
        )
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"refusing to import: the output is not an empty folder (it holds {shown})"


def _copy_folder(folder: Path, out: Path, reserved: frozenset[str]) -> Path:
    """Copy a dataset folder to `out/<its name>`; that folder (see `_copy_tree`)."""
    name = folder.resolve().name
    if name in reserved or name.startswith(".") or not name:
        name = "data"
    data_dir = out / name
    out.mkdir(parents=True, exist_ok=True)
    _copy_tree(folder, data_dir, Path(os.path.realpath(folder)), data_dir)
    return data_dir


def _copy_tree(src: Path, dst: Path, real_root: Path, copy_root: Path) -> None:
    """Copy the regular files and folders of `src` to `dst`, links kept as the reader sees them.

    A symlink whose target lies inside the dataset folder becomes a link to the same place in
    the copy (the reader follows it as it would in the original: a label folder link is read
    one level deep, so a loop cannot recurse). Anything that cannot be copied that way is
    refused, naming it: a link leading outside the folder (not followed), a broken link, a
    FIFO, socket or device (never opened: a FIFO would block, /dev/zero never ends). Hidden
    files and OS litter (`.git`, `.DS_Store`, `__MACOSX`) are left out.
    """
    dst.mkdir()
    with os.scandir(src) as listing:
        children = sorted(listing, key=lambda child: child.name)
    for child in children:
        path, target = Path(child.path), dst / child.name
        if is_ignored(path):
            continue  # hidden files and OS litter: the reader skips them, so the copy does too
        if child.is_symlink():
            os.symlink(_link_in_copy(path, real_root, copy_root, target), target)
        elif child.is_dir(follow_symlinks=False):
            _copy_tree(path, target, real_root, copy_root)
        elif child.is_file(follow_symlinks=False):
            shutil.copy2(path, target)
        else:
            raise DataError(f"{not_a_file(path)}; {_COPIED}", path=path)


def _link_in_copy(link: Path, real_root: Path, copy_root: Path, target: Path) -> str:
    """The relative target, inside the copy, of a link that stays inside the dataset folder."""
    real = Path(os.path.realpath(link))
    if not os.path.exists(link):
        raise DataError(f"{not_a_file(link)}; {_COPIED}", path=link)
    if not real.is_relative_to(real_root):
        raise DataError(
            f"is a symlink to {real}, outside the dataset folder; not followed ({_COPIED})",
            path=link,
        )
    if not real.is_dir() and (why := not_a_file(link)) is not None:
        raise DataError(f"{why}; {_COPIED}", path=link)
    return os.path.relpath(copy_root / real.relative_to(real_root), target.parent)


def _extract(zip_path: Path, out: Path, reserved: frozenset[str]) -> Path:
    """Extract into `out`, moving the dataset folder up to `out/<name>`; that folder.

    Lone wrapper folders (`fridgeObjects/`) are unwrapped as the zip reader does; a zip with
    no top folder is put in a folder named after the zip, so the annotation files never sit
    among the label folders.
    """
    staging = out / _EXTRACTING
    extract_zip(zip_path, staging)
    source = staging
    for _ in range(_MAX_WRAPPERS):
        children = [child for child in source.iterdir() if not is_ignored(child)]
        if len(children) != 1 or not children[0].is_dir():
            break
        if any(is_image_name(grandchild) for grandchild in children[0].iterdir()):
            break  # a lone label folder: the reader says what is wrong with the dataset
        source = children[0]
    name = source.name if source != staging else zip_path.stem
    if name in reserved or name.startswith("."):
        name = "data"
    data_dir = out / name
    source.rename(data_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return data_dir
