"""Dataset validation: read every entry, decode every image, report counts, sizes and problems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deitkit.data.dataset import Example, ImageDataset
from deitkit.data.formats import detect_layout, read_dataset_with_problems
from deitkit.data.hf_source import HfOptions
from deitkit.data.problems import Problem, ProblemLog
from deitkit.errors import DataError, ImageError
from deitkit.progress import progress_bar
from deitkit.tasks import Task

__all__ = [
    "ImageSizes",
    "Problem",
    "ValidationReport",
    "check_compatible",
    "validate_dataset",
]


@dataclass(frozen=True)
class ImageSizes:
    """Widths and heights (pixels) of the readable images: min, median and max of each."""

    count: int
    width: tuple[int, float, int]
    height: tuple[int, float, int]
    distinct: int

    @classmethod
    def of(cls, sizes: list[tuple[int, int]]) -> ImageSizes | None:
        if not sizes:
            return None
        wh = np.asarray(sizes)
        stats = [(int(v.min()), float(np.median(v)), int(v.max())) for v in (wh[:, 0], wh[:, 1])]
        return cls(len(sizes), stats[0], stats[1], len(set(sizes)))

    def to_text(self) -> str:
        (w0, wm, w1), (h0, hm, h1) = self.width, self.height
        return (
            f"min {w0}x{h0}, median {wm:g}x{hm:g}, max {w1}x{h1} "
            f"(width x height, {self.distinct} distinct)"
        )


@dataclass(frozen=True)
class ValidationReport:
    """What `deitkit data validate` prints: the usable dataset and everything found wrong.

    `dataset` holds only the usable examples (unreadable images removed); `ok` is False when
    any problem is an error.
    """

    source: Path
    source_layout: str
    dataset: ImageDataset
    problems: list[Problem]
    sizes: ImageSizes | None
    n_unreadable: int

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def to_text(self) -> str:
        ds = self.dataset
        layout = ds.layout if self.source_layout == ds.layout else f"{ds.layout} in a zip"
        lines = [
            f"dataset: {self.source}",
            f"layout:  {layout}",
            f"task:    {ds.task}",
            f"images:  {len(ds)} usable ({self.n_unreadable} unreadable skipped)",
            f"labels:  {len(ds.labels)}",
        ]
        counts = ds.label_counts()
        width = max([len("label"), *(len(label) for label in counts)])
        lines.append(f"  {'label':<{width}}  images")
        lines += [f"  {label:<{width}}  {n:>6}" for label, n in counts.items()]
        lines.append(f"image sizes: {self.sizes.to_text() if self.sizes else 'none readable'}")
        errors = sum(p.severity == "error" for p in self.problems)
        lines.append(f"problems: {errors} error(s), {len(self.problems) - errors} warning(s)")
        lines += [f"  {p.severity:<7} {p}" for p in self.problems]
        lines.append("result: OK" if self.ok else "result: FAILED")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        ds = self.dataset
        return {
            "ok": self.ok,
            "source": str(self.source),
            "source_layout": self.source_layout,
            "layout": ds.layout,
            "root": str(ds.root),
            "task": str(ds.task),
            "n_images": len(ds),
            "n_unreadable": self.n_unreadable,
            "labels": list(ds.labels),
            "images_per_label": ds.label_counts(),
            "image_sizes": dataclasses.asdict(self.sizes) if self.sizes else None,
            "problems": [p.to_dict() for p in self.problems],
        }


def validate_dataset(
    path: str | Path,
    *,
    task: Task | str | None = None,
    max_bad_fraction: float = 0.01,
    progress: bool = False,
    hf: HfOptions | None = None,
) -> ValidationReport:
    """Read the dataset at `path`, decode every image and report what is wrong.

    Entry-level problems (missing files, bad lines, conflicting duplicates) and unreadable
    images (corrupt, zero bytes, unsupported format) are reported and left out. Unreadable
    images are warnings up to `max_bad_fraction` of the images and an error above it.
    `hf` picks the columns and split of a Hugging Face dataset (see `read_dataset`).

    Raises:
        DataError: when the input cannot be read at all (no layout found, a labels.csv or
            JSONL that is not UTF-8 or has no header, an MLTable that is not YAML): there is
            no dataset to report on, and the message names the file and line.
    """
    source = Path(path)
    source_layout = detect_layout(source)
    dataset, problems = read_dataset_with_problems(source, task=task, hf=hf)
    log = ProblemLog(list(problems))
    good, sizes = _decode_all(dataset.examples, log, progress)
    n_bad = len(dataset) - len(good)
    if dataset.examples and n_bad / len(dataset) > max_bad_fraction:
        log.error(
            f"{n_bad} of {len(dataset)} images ({n_bad / len(dataset):.1%}) cannot be read, "
            f"more than max_bad_fraction={max_bad_fraction:g}",
            path=dataset.root,
        )
    dataset = dataclasses.replace(dataset, examples=tuple(good))
    for label, count in dataset.label_counts().items():
        if count == 0:
            log.error(f"label {label!r} has no readable images", path=dataset.root)
    return ValidationReport(
        source, source_layout, dataset, log.problems, ImageSizes.of(sizes), n_bad
    )


def _decode_all(
    examples: tuple[Example, ...], log: ProblemLog, progress: bool
) -> tuple[list[Example], list[tuple[int, int]]]:
    from deitkit.images import load_image

    good, sizes = [], []
    for example in progress_bar(examples, desc="checking images", unit="img", disable=not progress):
        try:
            with load_image(example.path) as image:
                sizes.append(image.size)
        except ImageError as err:
            log.warning(f"unreadable image skipped: {err.reason}", path=example.path)
            continue
        good.append(example)
    return good, sizes


def check_compatible(train: ImageDataset, validation: ImageDataset) -> None:
    """Check that `validation` can be scored by a model trained on `train`.

    Raises:
        DataError: when the tasks differ, or a validation label is unknown to training
            (naming the label and the first file that uses it).
    """
    if train.task is not validation.task:
        raise DataError(
            f"the validation data is {validation.task} but the training data is {train.task}",
            path=validation.root,
        )
    known = set(train.labels)
    for example in validation.examples:
        unknown = [label for label in example.labels if label not in known]
        if unknown:
            raise DataError(
                f"label {unknown[0]!r} (from {example.origin}) is not in the training data "
                f"(training labels: {', '.join(train.labels)})",
                path=example.path,
            )
