"""The embedded sample data: scikit-learn's 1,797 handwritten digit scans as PNG datasets."""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from deitkit.errors import ConfigError, DataError

# Marks a folder as ours, so a re-run may replace it; a hidden name keeps readers away from it.
MARKER = ".deitkit-sample.json"
DIGITS = "digits"
DIGITS_MULTILABEL = "digits-multilabel"
DIGITS_COUNT = 1797  # scans in scikit-learn's digits
_PNG = re.compile(r"\d+\.png")
# What each sample may hold besides the marker: its folders (of numbered PNGs) and files.
_LAYOUTS = {
    DIGITS: (frozenset(str(d) for d in range(10)), ()),
    DIGITS_MULTILABEL: (frozenset({"images"}), (("labels.csv",),)),
}


def write_digits(out_dir: str | Path, *, size: int = 64, count: int | None = None) -> Path:
    """Write the digits as a class-folder dataset: `OUT/<0..9>/<index>.png` (multiclass).

    Each 8x8 scan (values 0–16) becomes a `size` x `size` RGB PNG, upscaled bicubically,
    dark ink on a white background. The files are identical on every run.

    Args:
        out_dir: The folder to write; it must not exist, be empty, or hold an earlier sample.
        size: Side of each image in pixels (at least 8).
        count: Write only the first `count` scans (1 to 1,797); None writes all of them.
            scikit-learn's order cycles through the digits, so the first 150 hold 15 of each.

    Returns:
        `out_dir`.

    Raises:
        ConfigError: `size` is below 8 or `count` is outside 1–1,797.
        DataError: `out_dir` holds anything that is not an earlier deitkit sample.
    """
    if size < 8:
        raise ConfigError(f"size {size} is too small for the digits sample; use 8 or more")
    if count is not None and not 1 <= count <= DIGITS_COUNT:
        raise ConfigError(f"count {count} must be between 1 and {DIGITS_COUNT} (all the scans)")
    params = {"sample": DIGITS, "size": size, "count": count or DIGITS_COUNT}
    return _write_atomically(
        Path(out_dir), params, lambda staging: _write_digits(staging, size, count)
    )


def write_digits_multilabel(
    out_dir: str | Path, *, size: int = 64, count: int = 1000, seed: int = 0
) -> Path:
    """Write `count` images of 2–4 distinct digits each as a multilabel-folder dataset.

    Each image is a 2x2 grid of `size // 2` cells; 2–4 of them hold a digit scan of a
    different class each (with a white margin) and the rest stay white. `OUT/labels.csv`
    (`filename,labels`) lists every image in `OUT/images/` with its digits, sorted and
    space-separated. Distinct classes keep the label count equal to the number of digits
    shown. The same seed writes identical files.

    Args:
        out_dir: The folder to write; it must not exist, be empty, or hold an earlier sample.
        size: Side of each image in pixels (at least 16).
        count: How many images to compose (at least 1).
        seed: Seeds which digits, scans and cells each image gets.

    Returns:
        `out_dir`.

    Raises:
        ConfigError: `size` or `count` is too small.
        DataError: `out_dir` holds anything that is not an earlier deitkit sample.
    """
    if size < 16:
        raise ConfigError(f"size {size} is too small for the multilabel digits sample; use 16+")
    if count < 1:
        raise ConfigError(f"count {count} must be at least 1")
    params = {"sample": DIGITS_MULTILABEL, "size": size, "count": count, "seed": seed}
    return _write_atomically(
        Path(out_dir), params, lambda staging: _write_multilabel(staging, size, count, seed)
    )


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # shipped with scikit-learn: no download

    digits = load_digits()
    return digits.images, digits.target


def _render(scans: np.ndarray, size: int) -> np.ndarray:
    """Upscale 8x8 scans (0–16) to `size` x `size` uint8, dark ink on white."""
    out = np.empty((len(scans), size, size), dtype=np.uint8)
    for i, scan in enumerate(scans):
        # Float ("F") images keep the bicubic interpolation free of early rounding.
        big = Image.fromarray((scan * (255.0 / 16.0)).astype(np.float32))
        big = big.resize((size, size), Image.Resampling.BICUBIC)
        out[i] = 255 - np.clip(np.rint(np.asarray(big)), 0, 255).astype(np.uint8)
    return out


def _save_png(pixels: np.ndarray, path: Path) -> None:
    # Pillow writes no timestamp chunk, so identical pixels give identical bytes.
    Image.fromarray(pixels).convert("RGB").save(path, format="PNG")


def _write_digits(out: Path, size: int, count: int | None) -> None:
    scans, targets = _load_digits()
    scans, targets = scans[:count], targets[:count]
    pixels = _render(scans, size)
    for digit in range(10):
        (out / str(digit)).mkdir()
    for index, (image, digit) in enumerate(zip(pixels, targets, strict=True)):
        _save_png(image, out / str(int(digit)) / f"{index:04d}.png")


def _write_multilabel(out: Path, size: int, count: int, seed: int) -> None:
    scans, targets = _load_digits()
    cell = size // 2
    pad = cell // 8  # a white margin keeps neighbouring digits from touching
    pixels = _render(scans, cell - 2 * pad)
    by_class = [np.flatnonzero(targets == digit) for digit in range(10)]
    rng = np.random.default_rng(seed)
    images = out / "images"
    images.mkdir()
    width = max(4, len(str(count - 1)))
    rows = []
    for n in range(count):
        k = int(rng.integers(2, 5))
        classes = rng.choice(10, size=k, replace=False)
        cells = rng.choice(4, size=k, replace=False)
        canvas = np.full((size, size), 255, dtype=np.uint8)
        for digit, where in zip(classes, cells, strict=True):
            scan = int(rng.choice(by_class[digit]))
            top, left = (where // 2) * cell + pad, (where % 2) * cell + pad
            canvas[top : top + cell - 2 * pad, left : left + cell - 2 * pad] = pixels[scan]
        name = f"{n:0{width}d}.png"
        _save_png(canvas, images / name)
        rows.append((name, " ".join(sorted(str(int(d)) for d in classes))))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("filename", "labels"))
        writer.writerows(rows)


def _write_atomically(out: Path, params: dict, write: Callable[[Path], None]) -> Path:
    """Write into a temporary folder beside `out`, then swap it in; user data is never replaced."""
    if out.exists() and not _is_replaceable(out):
        raise DataError(
            "refusing to write the sample here: the folder is not empty and is not an earlier "
            "deitkit sample; choose a new or empty folder",
            path=out,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        write(staging)
        (staging / MARKER).write_text(json.dumps(params, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            old = staging.with_suffix(".old")
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _is_replaceable(out: Path) -> bool:
    """True for an empty folder, or one holding only the files an earlier sample wrote."""
    if not out.is_dir():
        return False
    entries = list(out.iterdir())
    if not entries:
        return True
    try:
        sample = json.loads((out / MARKER).read_text(encoding="utf-8")).get("sample")
    except (OSError, ValueError, AttributeError):
        return False
    layout = _LAYOUTS.get(sample)
    if layout is None:
        return False
    folders, files = layout
    for path in out.rglob("*"):
        parts = path.relative_to(out).parts
        if path.is_dir() and not path.is_symlink():
            ok = len(parts) == 1 and parts[0] in folders
        else:
            ok = parts in ((MARKER,), *files) or (
                len(parts) == 2 and parts[0] in folders and _PNG.fullmatch(parts[1]) is not None
            )
        if not ok:
            return False
    return True
