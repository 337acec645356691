"""Tests for deitkit.data.digits: counts, labels, the look, determinism and never overwriting."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from deitkit.data.digits import MARKER, write_digits, write_digits_multilabel
from deitkit.data.formats import read_dataset
from deitkit.errors import ConfigError, DataError
from deitkit.tasks import Task


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("samples") / "digits", size=8)


def _read_labels_csv(folder: Path) -> list[list[str]]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_digits_writes_all_scans_in_class_folders(digits_dir):
    dataset = read_dataset(digits_dir)
    assert len(dataset) == 1797
    assert dataset.labels == tuple(str(d) for d in range(10))
    assert dataset.task is Task.MULTICLASS and dataset.layout == "class-folders"
    expected = Counter(str(int(t)) for t in load_digits().target)
    assert dataset.label_counts() == {label: expected[label] for label in dataset.labels}


def test_digits_are_dark_ink_on_white_rgb(digits_dir):
    digits = load_digits()
    label = int(digits.target[5])
    image = Image.open(digits_dir / str(label) / "0005.png")
    assert image.mode == "RGB" and image.size == (8, 8)
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    # At the native size the scan is copied as is: 0 (no ink) → 255, 16 (full ink) → 0.
    expected = 255 - np.rint(digits.images[5] * 255 / 16).astype(np.uint8)
    np.testing.assert_allclose(pixels[..., 0], expected, atol=1)


def test_digits_upscale(tmp_path):
    out = write_digits(tmp_path / "big", size=32)
    image = Image.open(next((out / "0").iterdir()))
    assert image.size == (32, 32)
    assert np.asarray(image).min() < 64 and np.asarray(image).max() > 240


def test_digits_are_byte_identical_across_runs(digits_dir, tmp_path):
    again = write_digits(tmp_path / "again", size=8)
    assert _snapshot(again) == _snapshot(digits_dir)


def test_rerun_into_the_same_folder_is_allowed(tmp_path):
    out = write_digits(tmp_path / "d", size=8)
    before = _snapshot(out)
    assert write_digits(out, size=8) == out
    assert _snapshot(out) == before
    write_digits(out, size=12)  # different parameters replace the earlier sample
    assert Image.open(out / "0" / "0000.png").size == (12, 12)
    assert not list(tmp_path.glob(".d.*")), "a staging folder was left behind"


def test_refuses_a_folder_of_user_data(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an earlier deitkit sample"):
        write_digits(out, size=8)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_refuses_a_sample_folder_the_user_added_to(tmp_path):
    out = write_digits(tmp_path / "d", size=8)
    (out / "3" / "my_photo.jpg").write_bytes(b"precious")
    with pytest.raises(DataError, match="not an earlier deitkit sample"):
        write_digits(out, size=8)
    with pytest.raises(DataError):
        write_digits_multilabel(out, size=16, count=10)
    assert (out / "3" / "my_photo.jpg").read_bytes() == b"precious"


def test_refuses_a_fake_marker(tmp_path):
    out = tmp_path / "fake"
    out.mkdir()
    (out / MARKER).write_text("not json")
    (out / "0").mkdir()
    with pytest.raises(DataError):
        write_digits(out, size=8)
    assert (out / MARKER).read_text() == "not json"


def test_writes_into_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert len(list(write_digits(tmp_path / "empty", size=8).rglob("*.png"))) == 1797


def test_digits_count_writes_the_first_scans(tmp_path, digits_dir):
    out = write_digits(tmp_path / "first", size=8, count=150)
    dataset = read_dataset(out)
    assert dataset.label_counts() == {str(d): 15 for d in range(10)}  # scikit-learn's cycle
    written = {name: data for name, data in _snapshot(out).items() if name.endswith(".png")}
    everything = _snapshot(digits_dir)
    assert all(everything[name] == data for name, data in written.items())
    assert max(int(Path(name).stem) for name in written) == 149


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda out: write_digits(out, size=4), "size 4"),
        (lambda out: write_digits(out, count=0), "count 0"),
        (lambda out: write_digits(out, count=1798), "count 1798"),
        (lambda out: write_digits_multilabel(out, size=8), "size 8"),
        (lambda out: write_digits_multilabel(out, count=0), "count 0"),
    ],
)
def test_refuses_bad_parameters(tmp_path, call, match):
    with pytest.raises(ConfigError, match=match):
        call(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_multilabel_labels_csv_and_images(tmp_path):
    out = write_digits_multilabel(tmp_path / "ml", size=32, count=60, seed=3)
    rows = _read_labels_csv(out)
    assert rows[0] == ["filename", "labels"]
    assert len(rows) == 61
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == [row[0] for row in rows[1:]] == [f"{n:04d}.png" for n in range(60)]
    sizes = Counter()
    for name, labels in rows[1:]:
        digits = labels.split(" ")
        assert 2 <= len(digits) <= 4
        assert digits == sorted(set(digits)) and set(digits) <= set("0123456789")
        sizes[len(digits)] += 1
        # Each labelled digit fills one cell of the 2x2 grid; the other cells stay blank.
        pixels = np.asarray(Image.open(out / "images" / name).convert("L"))
        assert pixels.shape == (32, 32)
        inked = sum((pixels[r : r + 16, c : c + 16] < 128).any() for r in (0, 16) for c in (0, 16))
        assert inked == len(digits)
    assert set(sizes) == {2, 3, 4}


def test_multilabel_reads_as_a_multilabel_dataset(tmp_path):
    out = write_digits_multilabel(tmp_path / "ml", size=16, count=40)
    dataset = read_dataset(out)
    assert dataset.task is Task.MULTILABEL and dataset.layout == "multilabel-folder"
    assert len(dataset) == 40 and set(dataset.labels) <= {str(d) for d in range(10)}


def test_multilabel_is_deterministic_per_seed(tmp_path):
    a = _snapshot(write_digits_multilabel(tmp_path / "a", size=16, count=30, seed=7))
    b = _snapshot(write_digits_multilabel(tmp_path / "b", size=16, count=30, seed=7))
    c = _snapshot(write_digits_multilabel(tmp_path / "c", size=16, count=30, seed=8))
    assert a == b
    assert a["labels.csv"] != c["labels.csv"]


def test_multilabel_rerun_with_new_count_leaves_no_stale_images(tmp_path):
    out = write_digits_multilabel(tmp_path / "ml", size=16, count=30)
    write_digits_multilabel(out, size=16, count=12)
    assert len(list((out / "images").iterdir())) == 12
    assert len(_read_labels_csv(out)) == 13
