"""Test helpers shared by several test modules: tiny random checkpoints and generated images."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}
TINY_SHAPE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 16,
    "patch_size": 4,
}


def noisy_square(
    rng: np.random.Generator, colour: tuple[int, int, int], size: int = 20
) -> Image.Image:
    """A `size` x `size` square of `colour` with Gaussian pixel noise (sd 25)."""
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def save_tiny_checkpoint(
    folder: Path,
    model_type: str = "deit",
    *,
    labels=None,
    distilled=False,
    weight_std: float | None = None,
    **fields,
) -> Path:
    """A random 2-layer, 32-wide checkpoint with a preprocessor_config.json.

    At 16 px with patch 4 unless `fields` override those (or any other config field).
    `weight_std` redraws every weight from N(0, weight_std): with transformers' 0.02 init a
    tiny model answers nearly the same for every input, which hides a misplaced weight.
    """
    import torch
    import transformers

    from deitkit.transforms import EvalTransform

    config = transformers.AutoConfig.for_model(model_type, **{**TINY_SHAPE, **fields})
    if labels:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    cls_name = {
        "deit": "DeiTForImageClassificationWithTeacher"
        if distilled
        else "DeiTForImageClassification",
        "vit": "ViTForImageClassification",
        "beit": "BeitForImageClassification",
    }[model_type]
    model = getattr(transformers, cls_name)(config)
    if weight_std is not None:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for param in model.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * weight_std)
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(EvalTransform.for_image_size(config.image_size).to_config())
    )
    return folder


# mlflow infers a transformers model's requirements by importing it, which pulls in torchvision
# (not installable here); Azure's catalog models list theirs explicitly too.
CATALOG_REQUIREMENTS = ["torch", "transformers", "pillow"]


def save_catalog_model(folder: Path, *, labels=None) -> Path:
    """A tiny random DeiT laid out as Azure's model catalog ships one.

    `mlflow.transformers.save_model` of an image-classification pipeline: MLmodel with the
    `transformers` flavor, the weights under model/, the image processor under
    components/image_processor/. Labels default to blue, green, red.
    """
    import mlflow
    import transformers

    with tempfile.TemporaryDirectory() as temp:
        checkpoint = save_tiny_checkpoint(Path(temp) / "ckpt", labels=labels or list(COLOURS))
        pipeline = transformers.pipeline(
            "image-classification",
            model=transformers.AutoModelForImageClassification.from_pretrained(checkpoint),
            image_processor=transformers.AutoImageProcessor.from_pretrained(checkpoint),
        )
        mlflow.transformers.save_model(pipeline, str(folder), pip_requirements=CATALOG_REQUIREMENTS)
    return folder


def azure_model_import(mlflow_model: Path, output_dir: Path) -> Path:
    """What Azure's model-import step leaves for an MLflow model input: `output_dir`.

    As azureml-acft's ModelSelector does: every file of the model copied into one flat folder
    `model/`, and `model_selector_args.json` beside it naming that folder.
    """
    target = output_dir / "model"
    target.mkdir(parents=True)
    for file in sorted(p for p in mlflow_model.rglob("*") if p.is_file()):
        shutil.copy2(file, target / file.name)
    args = {"mlflow_model_path": "model", "pytorch_model_path": None, "model_name": "tiny-deit"}
    (output_dir / "model_selector_args.json").write_text(json.dumps(args, indent=2))
    return output_dir


def save_text_classification_model(folder: Path) -> Path:
    """A tiny random BERT text-classification pipeline saved with mlflow.transformers."""
    import mlflow
    import transformers

    with tempfile.TemporaryDirectory() as temp:
        vocab = Path(temp) / "vocab.txt"
        vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good"]) + "\n")
        config = transformers.BertConfig(
            vocab_size=6, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=16,
        )  # fmt: skip
        pipeline = transformers.pipeline(
            "text-classification",
            model=transformers.BertForSequenceClassification(config),
            tokenizer=transformers.BertTokenizer(str(vocab)),
        )
        mlflow.transformers.save_model(pipeline, str(folder), pip_requirements=CATALOG_REQUIREMENTS)
    return folder


# The MLmodel of a catalog asset from 2023 (azureml-evaluate-mlflow's flavor).
HFTRANSFORMERSV2_MLMODEL = """\
flavors:
  hftransformersv2:
    code: null
    hf_config_class: AutoConfig
    hf_pretrained_class: AutoModelForImageClassification
    hf_tokenizer_class: AutoImageProcessor
    huggingface_id: facebook/deit-base-patch16-224
    model_data: data
    task_type: image-classification
    transformers_version: 4.27.4
  python_function:
    data: data
    env: conda.yaml
    loader_module: azureml.evaluate.mlflow.hftransformers
    python_version: 3.8.16
mlflow_version: 2.3.1
"""


def save_hftransformersv2_model(folder: Path) -> Path:
    """A model laid out as the catalog's older `hftransformersv2` assets (data/model, ...)."""
    save_tiny_checkpoint(folder / "data" / "model", labels=list(COLOURS))
    shutil.copytree(folder / "data" / "model", folder / "data" / "config")
    (folder / "MLmodel").write_text(HFTRANSFORMERSV2_MLMODEL)
    return folder


def png_bytes(colour: tuple[int, int, int], size: int = 20) -> bytes:
    """A plain `size` x `size` PNG of one colour, as bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(folder: Path, n: int) -> list[Path]:
    """`n` PNGs `00.png`, `01.png`, ... in `folder`, cycling blue, green, red."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = list(COLOURS.values())
    paths = []
    for i in range(n):
        path = folder / f"{i:02d}.png"
        path.write_bytes(png_bytes(colours[i % len(colours)]))
        paths.append(path)
    return paths


def write_colour_folders(root: Path) -> Path:
    """Class folders blue/green/red under `root`, 8 noisy solid-colour 20x20 PNGs each."""
    rng = np.random.default_rng(0)
    for label, colour in COLOURS.items():
        (root / label).mkdir(parents=True)
        for i in range(8):
            noisy_square(rng, colour).save(root / label / f"{i}.png")
    return root


def write_colour_multilabel(root: Path) -> Path:
    """images/ + labels.csv under `root`: left and right halves coloured, labels = the colours."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    names = list(COLOURS)
    rows = ["filename,labels"]
    for i in range(24):
        left, right = names[i % 3], names[(i // 3) % 3]
        image = np.array(noisy_square(rng, COLOURS[left]))
        image[:, 10:] = np.array(noisy_square(rng, COLOURS[right]))[:, 10:]
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        rows.append(f"{i}.png,{' '.join(sorted({left, right}))}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def tiny_classifier(folder: Path, *, max_batch_size: int = 4):
    """A fp32 Classifier over a fresh tiny checkpoint with the labels blue, green, red."""
    from deitkit.inference import Classifier

    save_tiny_checkpoint(folder, labels=list(COLOURS))
    return Classifier.from_pretrained(folder, dtype="float32", max_batch_size=max_batch_size)
