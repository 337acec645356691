"""Load a packaged MLflow model's checkpoint straight into a Classifier, without MLflow's pyfunc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deitkit.errors import ConfigError
from deitkit.inference.checkpoint import CONFIG_FILE, has_safetensors
from deitkit.inference.classifier import Classifier

MLMODEL_FILE = "MLmodel"
CHECKPOINT_ARTIFACT = "checkpoint"  # the artifact name under which packaging stores the weights
INPUT_COLUMN = "image"  # the pyfunc's input: base64 strings (or URLs, where enabled)
OUTPUT_COLUMNS = ("probs", "labels", "predicted")  # the pyfunc's output, one row per image


def packaged_checkpoint(model_dir: str | Path) -> Path:
    """The checkpoint folder inside a packaged model (its MLmodel names the artifact path).

    Raises:
        ConfigError: `model_dir` has no MLmodel, or it names no deitkit checkpoint.
    """
    model_dir = Path(model_dir)
    mlmodel = model_dir / MLMODEL_FILE
    if not mlmodel.is_file():
        raise ConfigError(f"{model_dir}: not a packaged model (no {MLMODEL_FILE} file)")
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
        artifact = spec["flavors"]["python_function"]["artifacts"][CHECKPOINT_ARTIFACT]
        relative = Path(artifact["path"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{mlmodel}: names no {CHECKPOINT_ARTIFACT!r} artifact of a python_function flavor "
            f"({type(err).__name__}: {err}); was it made by `deitkit package`?"
        ) from None
    folder = (model_dir / relative).resolve()
    if relative.is_absolute() or not folder.is_relative_to(model_dir.resolve()):
        raise ConfigError(
            f"{mlmodel}: the checkpoint path {str(relative)!r} leaves the model folder"
        )
    if not has_safetensors(folder):
        raise ConfigError(f"{folder}: a packaged checkpoint must hold safetensors weights")
    return folder


def load_packaged(model_dir: str | Path, **options: Any) -> Classifier:
    """Load a model made by `deitkit package` (options as for `Classifier.from_pretrained`)."""
    return Classifier.from_pretrained(packaged_checkpoint(model_dir), **options)


def load_classifier(path: str | Path, **options: Any) -> Classifier:
    """Load a packaged model (a folder with MLmodel) or a checkpoint folder (with config.json).

    Raises:
        ConfigError: `path` is neither, saying what it should contain.
    """
    path = Path(path)
    if (path / MLMODEL_FILE).is_file():
        return load_packaged(path, **options)
    if (path / CONFIG_FILE).is_file():
        return Classifier.from_pretrained(path, **options)
    if not path.exists():
        raise ConfigError(f"{path}: not found; expected a packaged model or checkpoint folder")
    what = "folder" if path.is_dir() else "file"
    raise ConfigError(
        f"{path}: a {what}, not a model; expected a packaged model folder (with {MLMODEL_FILE}) "
        f"or a checkpoint folder (with {CONFIG_FILE})"
    )


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
