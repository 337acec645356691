"""Where a model folder keeps its weights and preprocessing: checkpoint, deitkit or catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from deitkit.errors import ConfigError
from deitkit.inference.checkpoint import CONFIG_FILE, has_safetensors

MLMODEL_FILE = "MLmodel"
CHECKPOINT_ARTIFACT = "checkpoint"  # the artifact name under which packaging stores the weights
PREPROCESSOR_FILE = "preprocessor_config.json"
# Azure's model-import step (azureml-acft's ModelSelector) writes this beside the model it
# copied; its `mlflow_model_path` (or `pytorch_model_path`) names that folder, `model`.
IMPORT_ARGS_FILE = "model_selector_args.json"
IMPORT_PATH_KEYS = ("mlflow_model_path", "pytorch_model_path")
TRANSFORMERS_FLAVOR = "transformers"
IMAGE_CLASSIFICATION = "image-classification"
# azureml-evaluate-mlflow's flavor, used by the catalog's assets from 2023 to early 2024.
LEGACY_FLAVOR = "hftransformersv2"
# Where mlflow.transformers saves an image pipeline's preprocessing: components/<name>/.
PROCESSOR_COMPONENTS = ("image_processor", "feature_extractor", "processor")


class Layout(StrEnum):
    """How a model folder is laid out."""

    CHECKPOINT = "checkpoint"  # a Hugging Face checkpoint: config.json, weights, preprocessing
    DEITKIT = "deitkit"  # `deitkit package`: MLmodel + the `checkpoint` artifact
    TRANSFORMERS = "transformers"  # mlflow.transformers, as Azure's model catalog ships it


@dataclass(frozen=True)
class ModelFiles:
    """What a model folder holds, resolved once for every loader.

    Attributes:
        root: The folder holding the model (the MLflow model or checkpoint folder).
        weights: Folder with config.json and the weights (`from_pretrained` reads it).
        processor: Folder with preprocessor_config.json; the user's folder, never copied.
        layout: Which layout `root` has.
    """

    root: Path
    weights: Path
    processor: Path
    layout: Layout


def model_files(path: str | Path) -> ModelFiles:
    """Resolve a checkpoint folder, a deitkit package, or a transformers-flavor MLflow model.

    Azure's model-import output (`model_selector_args.json` beside the model it names) is
    followed to that model; the import step flattens the MLflow model's subfolders into one,
    which is read as well.

    Raises:
        ConfigError: `path` is none of these, an older `hftransformersv2` model, an MLflow model
            of another task or flavor, or it lacks the weights or the preprocessing.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found; expected a packaged model or checkpoint folder")
    if not path.is_dir():
        raise ConfigError(
            f"{path}: a file, not a model; expected a packaged model folder (with {MLMODEL_FILE}) "
            f"or a checkpoint folder (with {CONFIG_FILE})"
        )
    if (path / MLMODEL_FILE).is_file():
        return _mlflow_files(path)
    if (path / CONFIG_FILE).is_file():
        return ModelFiles(path, path, path, Layout.CHECKPOINT)
    if (path / IMPORT_ARGS_FILE).is_file():
        return _imported_files(path)
    raise ConfigError(
        f"{path}: a folder, not a model; expected a packaged model folder (with {MLMODEL_FILE}) "
        f"or a checkpoint folder (with {CONFIG_FILE})"
    )


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The parsed MLmodel file of `model_dir`.

    Raises:
        ConfigError: it is missing, not YAML, or not a mapping with `flavors`.
    """
    mlmodel = model_dir / MLMODEL_FILE
    if not mlmodel.is_file():
        raise ConfigError(f"{model_dir}: not a packaged model (no {MLMODEL_FILE} file)")
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{mlmodel}: cannot be read: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{mlmodel}:{mark.line + 1}" if mark is not None else str(mlmodel)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: cannot be read as YAML: {problem}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise ConfigError(f"{mlmodel}: has no `flavors` mapping; is it an MLflow model?")
    return spec


def _mlflow_files(model_dir: Path) -> ModelFiles:
    mlmodel = model_dir / MLMODEL_FILE
    flavors = read_mlmodel(model_dir)["flavors"]
    pyfunc = flavors.get("python_function") or {}
    loader = str(pyfunc.get("loader_module", "")) if isinstance(pyfunc, dict) else ""
    if LEGACY_FLAVOR in flavors or loader.startswith("azureml.evaluate.mlflow"):
        raise ConfigError(
            f"{mlmodel}: an MLflow model in the older {LEGACY_FLAVOR} flavor "
            "(azureml-evaluate-mlflow), which deitkit does not read; use a current version of "
            f"the catalog model (flavor {TRANSFORMERS_FLAVOR}) or its Hugging Face checkpoint "
            f"folder ({CONFIG_FILE}, weights and {PREPROCESSOR_FILE})"
        )
    artifacts = pyfunc.get("artifacts") if isinstance(pyfunc, dict) else None
    if isinstance(artifacts, dict) and CHECKPOINT_ARTIFACT in artifacts:
        return _deitkit_files(model_dir, artifacts[CHECKPOINT_ARTIFACT])
    if isinstance(flavors.get(TRANSFORMERS_FLAVOR), dict):
        return _transformers_files(model_dir, flavors[TRANSFORMERS_FLAVOR])
    raise ConfigError(
        f"{mlmodel}: an MLflow model of flavors {', '.join(map(str, flavors))}, which deitkit "
        f"does not read; expected a package made by `deitkit package` or a "
        f"{TRANSFORMERS_FLAVOR} {IMAGE_CLASSIFICATION} model (Azure's model catalog)"
    )


def _deitkit_files(model_dir: Path, artifact: Any) -> ModelFiles:
    mlmodel = model_dir / MLMODEL_FILE
    relative = artifact.get("path") if isinstance(artifact, dict) else None
    if not isinstance(relative, str):
        raise ConfigError(
            f"{mlmodel}: the {CHECKPOINT_ARTIFACT!r} artifact names no path; "
            "was it made by `deitkit package`?"
        )
    folder = _inside(model_dir, relative, f"the {CHECKPOINT_ARTIFACT} path")
    if not folder.is_dir() and (model_dir / CONFIG_FILE).is_file():
        folder = model_dir  # flattened by Azure's model import, as below
    if not has_safetensors(folder):
        raise ConfigError(f"{folder}: a packaged checkpoint must hold safetensors weights")
    return ModelFiles(model_dir, folder, folder, Layout.DEITKIT)


def _transformers_files(model_dir: Path, flavor: dict[str, Any]) -> ModelFiles:
    mlmodel = model_dir / MLMODEL_FILE
    task = flavor.get("task")
    if task != IMAGE_CLASSIFICATION:
        raise ConfigError(
            f"{mlmodel}: a {task!r} model ({flavor.get('instance_type', 'pipeline')}); deitkit "
            f"takes {IMAGE_CLASSIFICATION} models only"
        )
    binary = flavor.get("model_binary")
    if not isinstance(binary, str):
        raise ConfigError(
            f"{mlmodel}: holds no model weights (no model_binary; saved with "
            f"save_pretrained=False from {flavor.get('source_model_name')!r}); save it with its "
            "weights, or fine-tune from that Hugging Face model directly"
        )
    weights = _inside(model_dir, binary, "model_binary")
    if not (weights / CONFIG_FILE).is_file() and (model_dir / CONFIG_FILE).is_file():
        # Azure's model import copies every file of the model into one flat folder, leaving
        # MLmodel's paths behind: the weights and the preprocessing lie beside it.
        weights = model_dir
    if not (weights / CONFIG_FILE).is_file():
        raise ConfigError(f"{mlmodel}: model_binary {binary!r} holds no {CONFIG_FILE}")
    components = [str(c) for c in flavor.get("components") or []]
    names = [*components, *(c for c in PROCESSOR_COMPONENTS if c not in components)]
    candidates = [model_dir / "components" / name for name in names] + [weights, model_dir]
    processor = next((c for c in candidates if (c / PREPROCESSOR_FILE).is_file()), None)
    if processor is None:
        raise ConfigError(
            f"{mlmodel}: no {PREPROCESSOR_FILE} in components/"
            f"{{{','.join(names)}}}/ nor beside the weights; the image_processor component "
            "is needed to preprocess images as the model was trained"
        )
    return ModelFiles(model_dir, weights, processor, Layout.TRANSFORMERS)


def _imported_files(folder: Path) -> ModelFiles:
    """Follow Azure's model-import output (`model_selector_args.json`) to the model it copied."""
    args_file = folder / IMPORT_ARGS_FILE
    try:
        args = json.loads(args_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{args_file}: cannot be read as JSON: {err}") from None
    relative = next(
        (args[k] for k in IMPORT_PATH_KEYS if isinstance(args, dict) and args.get(k)), None
    )
    if not isinstance(relative, str):
        raise ConfigError(
            f"{args_file}: names no model ({' or '.join(IMPORT_PATH_KEYS)}); the import step "
            "downloaded none, so point deitkit at the model itself"
        )
    model_dir = _inside(folder, relative, "the imported model's path", source=args_file)
    if not ((model_dir / MLMODEL_FILE).is_file() or (model_dir / CONFIG_FILE).is_file()):
        raise ConfigError(
            f"{args_file}: names {relative!r}, which holds no {MLMODEL_FILE} or {CONFIG_FILE}"
        )
    return model_files(model_dir)


def _inside(root: Path, relative: str, what: str, *, source: Path | None = None) -> Path:
    """`root`/`relative`, refusing a path that leaves `root` (an absolute one, or `..`)."""
    source = source or root / MLMODEL_FILE
    folder = (root / relative).resolve()
    if Path(relative).is_absolute() or not folder.is_relative_to(root.resolve()):
        raise ConfigError(f"{source}: {what} {relative!r} leaves the model folder")
    return folder
