"""Load a model folder (deitkit package, catalog MLflow model or checkpoint) into a Classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError
from deitkit.inference.checkpoint import CONFIG_FILE
from deitkit.inference.classifier import Classifier
from deitkit.inference.mlflow_layouts import (
    CHECKPOINT_ARTIFACT,
    MLMODEL_FILE,
    Layout,
    model_files,
)

INPUT_COLUMN = "image"  # the pyfunc's input: base64 strings (or URLs, where enabled)
OUTPUT_COLUMNS = ("probs", "labels", "predicted")  # the pyfunc's output, one row per image

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "INPUT_COLUMN",
    "MLMODEL_FILE",
    "MODEL_DIR_ENV",
    "OUTPUT_COLUMNS",
    "find_model_dir",
    "load_classifier",
    "load_packaged",
    "packaged_checkpoint",
]


def packaged_checkpoint(model_dir: str | Path) -> Path:
    """The checkpoint folder inside a model made by `deitkit package`.

    Raises:
        ConfigError: `model_dir` has no MLmodel, or it is not a deitkit package.
    """
    model_dir = Path(model_dir)
    if not (model_dir / MLMODEL_FILE).is_file():
        raise ConfigError(f"{model_dir}: not a packaged model (no {MLMODEL_FILE} file)")
    files = model_files(model_dir)
    if files.layout is not Layout.DEITKIT:
        raise ConfigError(
            f"{model_dir / MLMODEL_FILE}: names no {CHECKPOINT_ARTIFACT!r} artifact of a "
            f"python_function flavor (it is a {files.layout.value} model); was it made by "
            "`deitkit package`?"
        )
    return files.weights


def load_packaged(model_dir: str | Path, **options: Any) -> Classifier:
    """Load a model made by `deitkit package` (options as for `Classifier.from_pretrained`)."""
    return Classifier.from_pretrained(packaged_checkpoint(model_dir), **options)


def load_classifier(path: str | Path, **options: Any) -> Classifier:
    """Load any model folder `deitkit.inference.mlflow_layouts.model_files` reads.

    That is a deitkit package, a transformers-flavor MLflow model (Azure's catalog layout, or
    as its model-import step leaves it), or a checkpoint folder; options as for
    `Classifier.from_pretrained`.

    Raises:
        ConfigError: `path` is none of these, saying what it should contain.
    """
    files = model_files(path)
    return Classifier.from_pretrained(files.weights, processor=files.processor, **options)


# Where Azure ML mounts the deployment's model, for the online and batch scoring scripts.
MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
# How far under it `find_model_dir` looks, the one depth every endpoint uses:
# AZUREML_MODEL_DIR/<model folder>/ is usual; v1 registrations add <name>/<version>/.
MODEL_SEARCH_DEPTH = 3


def find_model_dir(root: str | Path) -> Path:
    """The model folder at or under `root`: a packaged model (MLmodel) or a checkpoint.

    `root` itself wins; otherwise its subfolders, then theirs, are searched, preferring a
    packaged model to a checkpoint at the same depth.

    Raises:
        ConfigError: nothing usable is found, or more than one at the first depth with any.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: the model folder does not exist or is not a folder")
    level = [root]
    for _ in range(MODEL_SEARCH_DEPTH + 1):
        for marker in (MLMODEL_FILE, CONFIG_FILE):
            found = [folder for folder in level if (folder / marker).is_file()]
            if len(found) == 1:
                return found[0]
            if found:
                raise ConfigError(
                    f"{root}: holds several models ({', '.join(str(f) for f in found)}); "
                    "point it at one of them"
                )
        level = sorted(child for folder in level for child in folder.iterdir() if child.is_dir())
    raise ConfigError(
        f"{root}: no packaged model ({MLMODEL_FILE}) or checkpoint ({CONFIG_FILE}) in it or "
        f"{MODEL_SEARCH_DEPTH} folders below it"
    )
