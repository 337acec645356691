"""`deitkit package`: a checkpoint folder → an MLflow pyfunc (models-from-code, safetensors)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import deitkit
from deitkit.data.dataset import ImageDataset
from deitkit.data.formats import read_dataset
from deitkit.decisions import check_label_thresholds, check_temperature
from deitkit.errors import ConfigError
from deitkit.inference.checkpoint import (
    CONFIG_FILE,
    DEITKIT_FILE,
    HISTORY_FILE,
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX,
    CheckpointInfo,
    has_safetensors,
    read_checkpoint,
)
from deitkit.inference.packaged import CHECKPOINT_ARTIFACT, INPUT_COLUMN, OUTPUT_COLUMNS
from deitkit.tasks import check_threshold
from deitkit.transforms import CONFIG_NAME as PREPROCESSOR_FILE

log = logging.getLogger(__name__)

# What `deitkit finetune --teacher` writes beside the model (training/distillation.py).
DISTILLATION_FILE = "distillation.json"

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
# What `import deitkit.inference` and the pyfunc need at run time (pyyaml reads MLmodel files,
# psutil sizes the thread pool). tests/test_packaging.py checks that these cover every import
# of the packaged code the pyfunc reaches, so Azure's no-code MLflow route installs enough.
RUNTIME_REQUIREMENTS = (
    "torch",
    "transformers",
    "safetensors",
    "pillow",
    "numpy",
    "pandas",
    "pyyaml",
    "psutil",
    "mlflow-skinny",
)
# Pinned too where installed: ONNX Runtime runs the package's ONNX engines (without it they are
# simply not offered). torchao, torch-int8's, is left to the host: deitkit imports it only
# where it is installed, and it is not worth installing where torch's int8 kernels are slow.
OPTIONAL_REQUIREMENTS = ("onnxruntime",)
# The model card `deitkit finetune` writes there (training/model_card.py): the package carries
# it in its checkpoint and at its root, where the Hub and a browser of the folder look for it.
CARD_FILE = "README.md"
OPTIONAL_IMPORTS = ("onnxruntime", "torchao")


def package_model(
    checkpoint: str | Path,
    output: str | Path,
    *,
    threshold: float = 0.5,
    thresholds: Mapping[str, float] | None = None,
    temperature: float | None = None,
    overwrite: bool = False,
    validation: ImageDataset | str | Path | None = None,
) -> Path:
    """Save a checkpoint folder as an MLflow pyfunc model at `output`; return `output`.

    The package holds the checkpoint's config.json, safetensors weights (converted from a
    pickled .bin when that is all there is) and preprocessor_config.json, a deitkit.json with
    the labels, task and threshold (and the per-label thresholds and temperature, when given),
    and a copy of the deitkit package (`code/deitkit`), so it loads with nothing but the pinned
    requirements installed. Beside the weights go the ONNX
    export (`model.onnx`, checked against torch, and its dynamic-int8 copy `model.int8.onnx`)
    and engines.json, which says which engines may serve the model: judged on `validation`
    when it is given (`deitkit.engine_decision`), else fp32 and bf16 only. The output is
    written to a temporary folder beside `output` and moved into place when complete.

    Args:
        checkpoint: A Hugging Face image-classification checkpoint folder.
        output: Folder to create; it must not exist (or be empty) unless `overwrite`.
        threshold: Default multilabel threshold (the `threshold` param's default when there are
            no per-label thresholds).
        thresholds: Per-label multilabel thresholds, label → threshold, naming every label.
        temperature: Divides the logits before the activation (calibration); None: 1.0.
        overwrite: Replace an existing `output`.
        validation: Labelled data to judge the reduced-precision engines on: a dataset, or
            any layout `deitkit data validate` reads; None: no int8 engine may serve.

    Raises:
        ConfigError: the checkpoint is unusable, `output` exists, or `thresholds` or
            `temperature` is invalid for it.
        DataError: `validation` cannot be read or uses labels the checkpoint does not have.
    """
    import mlflow

    checkpoint, output = Path(checkpoint), Path(output)
    threshold = check_threshold(threshold, name="--threshold")
    if output.exists() and not overwrite and (output.is_file() or any(output.iterdir())):
        raise ConfigError(f"{output}: already exists; choose a new folder or pass --overwrite")
    decisions = {}
    if thresholds is not None or temperature is not None:
        decisions = decisions_record(read_checkpoint(checkpoint), thresholds, temperature)
    if validation is not None and not isinstance(validation, ImageDataset):
        # Read first: a bad --validation fails before minutes of export and judging.
        validation = read_dataset(validation, task=read_checkpoint(checkpoint).task)
    distilled = distillation_of(checkpoint)  # read once: deitkit.json and MLmodel both carry it
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.tmp-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="deitkit-package-") as temp:
        folder = Path(temp) / CHECKPOINT_ARTIFACT
        info = stage_checkpoint(
            checkpoint,
            folder,
            threshold=threshold,
            validation=validation,
            distilled=distilled,
            decisions=decisions,
        )
        try:
            mlflow.pyfunc.save_model(
                path=str(staging),
                python_model=str(PYFUNC_FILE),
                artifacts={CHECKPOINT_ARTIFACT: str(folder)},
                code_paths=[str(_stage_code(Path(temp) / "code"))],
                signature=model_signature(None if info.thresholds else threshold),
                input_example=pd.DataFrame({INPUT_COLUMN: [example_image_base64()]}),
                pip_requirements=pinned_requirements(),
                metadata={
                    "task": info.task.value,
                    "num_labels": len(info.labels),
                    "deitkit_version": deitkit.__version__,
                    **distilled,
                    **decisions,
                },
            )
            if (folder / CARD_FILE).is_file():
                shutil.copy2(folder / CARD_FILE, staging / CARD_FILE)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if output.is_dir():
        shutil.rmtree(output)
    elif output.exists():
        output.unlink()
    staging.rename(output)
    log.info("packaged %s (%s, %d labels) as %s", checkpoint, info.task, len(info.labels), output)
    return output


def decisions_record(
    info: CheckpointInfo,
    thresholds: Mapping[str, float] | None,
    temperature: float | None,
) -> dict:
    """`{"thresholds": {label: t}, "temperature": T}` (the ones given), checked against the
    model: what deitkit.json and the MLmodel metadata carry."""
    record: dict = {}
    if thresholds is not None:
        checked = check_label_thresholds(thresholds, info.labels, info.task)
        record["thresholds"] = dict(zip(info.labels, checked, strict=True))
    if temperature is not None:
        record["temperature"] = check_temperature(temperature)
    return record


def with_decisions(
    package_dir: str | Path,
    output_dir: str | Path,
    *,
    thresholds: Mapping[str, float] | None = None,
    temperature: float | None = None,
) -> Path:
    """Copy the deitkit package `package_dir` to `output_dir` with per-label thresholds or a
    temperature set (None: kept as they are); return `output_dir`.

    The source is only read: every file is copied (no links, which an edit of either copy
    would change in both). The copy's deitkit.json and MLmodel metadata carry the values; the
    `threshold` param's default becomes None where there are per-label thresholds (MLflow
    passes the default when a request gives none); the copy gets a new model_uuid and this
    deitkit's code (`code/deitkit`), which reads what it writes. It is built in a temporary
    folder beside `output_dir` and renamed into place when complete.

    Raises:
        ConfigError: neither value is given, `package_dir` is not a deitkit package,
            `output_dir` exists and is not an empty folder or lies inside `package_dir`, or a
            value does not fit the model (thresholds naming other labels, or for a multiclass
            model; a temperature not > 0).
    """
    from deitkit.inference.packaged import packaged_checkpoint

    package_dir, output_dir = Path(package_dir), Path(output_dir)
    if thresholds is None and temperature is None:
        raise ConfigError(f"{package_dir}: nothing to set; give thresholds or a temperature")
    checkpoint = packaged_checkpoint(package_dir)
    decisions = decisions_record(read_checkpoint(checkpoint), thresholds, temperature)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ConfigError(f"{output_dir}: already exists and is not empty; choose a new folder")
    source = package_dir.resolve()
    if output_dir.resolve().is_relative_to(source):
        raise ConfigError(f"{output_dir}: lies inside the package {package_dir}; choose another")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(package_dir, staging)  # copies every file (copy2), following links
        _set_decisions(staging, staging / checkpoint.relative_to(source), decisions)
        if output_dir.is_dir():
            output_dir.rmdir()  # empty, as checked
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("copied %s to %s with %s", package_dir, output_dir, ", ".join(decisions))
    return output_dir


def _set_decisions(package: Path, checkpoint: Path, decisions: dict) -> None:
    """Write `decisions` into the staged copy's deitkit.json and MLmodel; refresh its code."""
    from mlflow.models import Model

    from deitkit.inference.packaged import MLMODEL_FILE

    path = checkpoint / DEITKIT_FILE
    description = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    description.update(decisions, deitkit_version=deitkit.__version__)
    path.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    info = read_checkpoint(checkpoint)  # the copy reads back as the model with them
    if (package / "code" / "deitkit").is_dir():  # not where Azure's model import flattened it
        shutil.rmtree(package / "code" / "deitkit")
        _stage_code(package / "code")
    model = Model.load(str(package / MLMODEL_FILE))
    model.metadata = {**(model.metadata or {}), **decisions, "deitkit_version": deitkit.__version__}
    model.signature = model_signature(None if info.thresholds else info.threshold)
    model.model_uuid = uuid.uuid4().hex
    model.save(str(package / MLMODEL_FILE))


def distillation_of(checkpoint: Path) -> dict:
    """`{"distillation": {...}}` from the checkpoint's distillation.json (`deitkit finetune
    --teacher` writes it: the teacher and the settings); `{}` for a model not distilled."""
    path = checkpoint / DISTILLATION_FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: cannot be read as JSON: {err}") from None
    return {"distillation": record}


def stage_checkpoint(
    checkpoint: Path,
    folder: Path,
    *,
    threshold: float,
    validation: ImageDataset | None = None,
    distilled: dict | None = None,
    decisions: dict | None = None,
) -> CheckpointInfo:
    """Copy what inference needs from `checkpoint` into `folder`, weights as safetensors.

    `distilled` (`distillation_of(checkpoint)`, read by the caller) and `decisions`
    (`decisions_record`: per-label thresholds, temperature) go into deitkit.json.

    Training state (optimizer, scheduler, training_args.bin, RNG) is left behind; the ONNX
    export and engines.json are added (see `package_model`).

    Raises:
        ConfigError: the checkpoint lacks a file inference needs or does not load.
        DataError: `validation` uses labels the checkpoint does not have.
    """
    from deitkit.engine_decision import decide_engines
    from deitkit.inference import Classifier
    from deitkit.inference.engines import write_record
    from deitkit.inference.engines.onnx_export import export_onnx

    read_checkpoint(checkpoint)  # config.json present and a classification: fail early
    if not (checkpoint / PREPROCESSOR_FILE).is_file():
        raise ConfigError(
            f"{checkpoint}: has no {PREPROCESSOR_FILE}; the package needs the preprocessing "
            "that evaluation used (deitkit finetune writes it)"
        )
    folder.mkdir(parents=True)
    for name in (CONFIG_FILE, PREPROCESSOR_FILE):
        shutil.copy2(checkpoint / name, folder / name)
    for name in (HISTORY_FILE, CARD_FILE):  # the report's training curves; the model card
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, folder / name)
    if has_safetensors(checkpoint):
        for name in _safetensors_files(checkpoint):
            shutil.copy2(checkpoint / name, folder / name)
    else:
        _convert_to_safetensors(checkpoint, folder)
    info = read_checkpoint(folder)
    description = {
        "labels": list(info.labels),
        "task": info.task.value,
        "threshold": threshold,
        "deitkit_version": deitkit.__version__,
        **(distilled or {}),
        **(decisions or {}),
    }
    (folder / DEITKIT_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    # Loading the staged copy proves it complete: weights, preprocessing and labels agree.
    classifier = Classifier.from_pretrained(folder, device="cpu", engine="torch", dtype="fp32")
    transform = classifier.transform
    export = export_onnx(
        classifier.model,
        folder,
        normalize=transform.normalize,
        size=transform.output_size,
        task=classifier.task,
    )
    record = decide_engines(classifier, folder, export=export, validation=validation)
    write_record(folder, record)
    allowed = [name for name, verdict in record.verdicts.items() if verdict.allowed]
    log.info("engines allowed to serve %s: %s", checkpoint, ", ".join(allowed))
    return read_checkpoint(folder)


def model_signature(threshold: float | None = 0.5):
    """The package's MLflow signature: `image` strings in; probs, labels, predicted out.

    `threshold` is the `threshold` param's default, which MLflow passes whenever a request
    gives none: None for a package with per-label thresholds, so that they decide.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, INPUT_COLUMN)]),
        outputs=Schema(
            [
                ColSpec(Array(DataType.double if name == "probs" else DataType.string), name)
                for name in OUTPUT_COLUMNS
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("threshold", DataType.double, threshold),
                ParamSpec("top_k", DataType.long, None),
            ]
        ),
    )


def pinned_requirements() -> list[str]:
    """`name==version` of each runtime requirement (and installed optional one) as here.

    Local version labels are dropped (`2.13.0+cpu` → `2.13.0`), so the host installs the torch
    build that suits its hardware. deitkit itself travels in the package (`code/deitkit`).
    """
    from packaging.version import Version

    installed = [name for name in OPTIONAL_REQUIREMENTS if importlib.util.find_spec(name)]
    return [
        f"{name}=={Version(version(name)).public}" for name in (*RUNTIME_REQUIREMENTS, *installed)
    ]


def example_image_base64(size: int = 16) -> str:
    """A small PNG (a colour gradient) as base64: the package's input example."""
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    pixels = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[::-1, None]), -1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _safetensors_files(checkpoint: Path) -> list[str]:
    """model.safetensors, or the index and every shard it names."""
    index = checkpoint / SAFETENSORS_INDEX
    if not index.is_file():
        return [SAFETENSORS_FILE]
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise ConfigError(f"{index}: not a safetensors index ({err})") from None
    for shard in shards:
        if Path(shard).name != shard or not (checkpoint / shard).is_file():
            raise ConfigError(f"{index}: names a shard {shard!r} that is not in {checkpoint}")
    return [SAFETENSORS_INDEX, *shards]


def _convert_to_safetensors(checkpoint: Path, folder: Path) -> None:
    """Re-save pickled weights (pytorch_model.bin) as safetensors, through transformers.

    transformers reads .bin files with `torch.load(weights_only=True)`, which refuses pickled code.
    """
    from transformers import AutoModelForImageClassification

    if not any(checkpoint.glob("pytorch_model*.bin")):
        raise ConfigError(
            f"{checkpoint}: has no model weights ({SAFETENSORS_FILE} or pytorch_model.bin)"
        )
    log.info("%s has no safetensors weights: converting pytorch_model.bin", checkpoint)
    try:
        model = AutoModelForImageClassification.from_pretrained(checkpoint, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{checkpoint}: the weights cannot be loaded: {err}") from None
    model.save_pretrained(folder)  # writes config.json and model.safetensors


def _stage_code(folder: Path) -> Path:
    """A copy of the deitkit package without bytecode caches, for the package's code/ folder."""
    source = Path(deitkit.__file__).parent
    target = folder / "deitkit"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target
