"""Model folder layouts: checkpoint, deitkit package, Azure's catalog MLflow model (as shipped and
as its model-import step leaves it); older and foreign MLflow models refused in one line."""

from __future__ import annotations

import base64
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    COLOURS,
    azure_model_import,
    noisy_square,
    save_catalog_model,
    save_hftransformersv2_model,
    save_text_classification_model,
    save_tiny_checkpoint,
)

from deitkit.errors import ConfigError
from deitkit.inference import load_classifier
from deitkit.inference.mlflow_layouts import Layout, model_files
from deitkit.transforms import EvalTransform

LABELS = list(COLOURS)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    catalog = save_catalog_model(root / "catalog")
    return {
        "root": root,
        "catalog": catalog,
        "imported": azure_model_import(catalog, root / "imported"),
        "legacy": save_hftransformersv2_model(root / "legacy"),
        "text": save_text_classification_model(root / "text"),
    }


def images_base64() -> list[str]:
    """Noisy squares and a non-square photo-like image, as PNG and JPEG."""
    rng = np.random.default_rng(0)
    images = [
        noisy_square(rng, colour, size=20 + 7 * i) for i, colour in enumerate(COLOURS.values())
    ]
    images.append(noisy_square(rng, (120, 90, 60), size=40).resize((50, 30)))
    encoded = []
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG" if i % 2 else "PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}  # fmt: skip


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        model_files(path)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_the_catalog_layout_keeps_weights_and_image_processor_apart(models):
    catalog = models["catalog"]
    files = model_files(catalog)
    assert files.layout is Layout.TRANSFORMERS and files.root == catalog
    assert files.weights == (catalog / "model").resolve()
    assert files.processor == catalog / "components" / "image_processor"
    assert not (files.weights / "preprocessor_config.json").exists()


def test_the_catalog_model_predicts_as_its_own_pyfunc_and_is_left_untouched(models):
    import mlflow

    catalog = models["catalog"]
    before = snapshot(catalog)
    classifier = load_classifier(catalog, dtype="fp32")
    assert classifier.labels == LABELS  # the checkpoint's id2label
    processor = catalog / "components" / "image_processor"
    assert classifier.transform == EvalTransform.from_pretrained(processor)
    images = images_base64()
    predictions = classifier.predict_inputs(images)
    path = list(sys.path)
    try:
        expected = mlflow.pyfunc.load_model(str(catalog)).predict(pd.DataFrame({"image": images}))
    finally:
        sys.path[:] = path
    for prediction, row in zip(predictions, expected.to_dict(orient="records"), strict=True):
        ranked = prediction.top_k()
        assert [row[k]["label"] for k in sorted(row)] == [label for label, _ in ranked]
        np.testing.assert_allclose(
            [row[k]["score"] for k in sorted(row)], [score for _, score in ranked], atol=1e-4
        )
    assert snapshot(catalog) == before


@pytest.mark.parametrize("where", ["output_dir", "output_dir/model"])
def test_azure_model_import_output_is_read_flattened(models, where):
    imported = models["imported"] / "model"
    files = model_files(models["imported"] if where == "output_dir" else imported)
    assert files == model_files(imported)
    assert files.layout is Layout.TRANSFORMERS
    assert files.weights == files.processor == imported.resolve()
    images = images_base64()
    flat = load_classifier(models["imported"], dtype="fp32").predict_inputs(images)
    shipped = load_classifier(models["catalog"], dtype="fp32").predict_inputs(images)
    assert [p.probs for p in flat] == [p.probs for p in shipped]


def test_checkpoints_and_deitkit_packages_keep_their_layouts(tmp_path):
    from deitkit.packaging import package_model

    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", labels=LABELS)
    files = model_files(checkpoint)
    assert (files.layout, files.weights, files.processor) == (
        Layout.CHECKPOINT,
        checkpoint,
        checkpoint,
    )
    package = package_model(checkpoint, tmp_path / "package")
    files = model_files(package)
    inside = (package / "artifacts" / "checkpoint").resolve()
    assert (files.layout, files.weights, files.processor) == (Layout.DEITKIT, inside, inside)


def test_an_older_hftransformersv2_model_gets_one_line_saying_what_to_do(models):
    message = refused(models["legacy"])
    assert "older hftransformersv2 flavor" in message
    assert "use a current version of the catalog model (flavor transformers)" in message


def test_an_mlflow_model_of_another_task_is_refused(models):
    message = refused(models["text"])
    assert "a 'text-classification' model (TextClassificationPipeline)" in message
    assert "deitkit takes image-classification models only" in message


def _copy_with_mlmodel(models: dict, name: str, edit) -> Path:
    folder = models["root"] / name
    shutil.copytree(models["catalog"], folder)
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(edit(mlmodel.read_text()))
    return folder


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("sklearn", lambda t: t.replace("transformers:", "sklearn:"),
         "an MLflow model of flavors python_function, sklearn, which deitkit does not read"),
        ("not-yaml", lambda t: "flavors: [unclosed", "cannot be read as YAML"),
        ("no-flavors", lambda t: "artifact_path: model\n", "has no `flavors` mapping"),
        ("escaping", lambda t: t.replace("model_binary: model", "model_binary: ../catalog/model"),
         "model_binary '../catalog/model' leaves the model folder"),
        ("no-weights", lambda t: t.replace("    model_binary: model\n", ""),
         "holds no model weights (no model_binary; saved with save_pretrained=False"),
    ],
)  # fmt: skip
def test_unusable_mlflow_models_are_refused_in_one_line(models, name, edit, message):
    assert message in refused(_copy_with_mlmodel(models, name, edit))


def test_a_catalog_model_without_its_image_processor_is_refused(models):
    folder = _copy_with_mlmodel(models, "no-processor", lambda text: text)
    shutil.rmtree(folder / "components")
    assert "no preprocessor_config.json in components/{image_processor," in refused(folder)


def test_an_import_output_that_names_no_model_is_refused(tmp_path):
    (tmp_path / "model_selector_args.json").write_text('{"mlflow_model_path": null}')
    assert "names no model (mlflow_model_path or pytorch_model_path)" in refused(tmp_path)
    (tmp_path / "model_selector_args.json").write_text('{"mlflow_model_path": "model"}')
    (tmp_path / "model").mkdir()
    assert "names 'model', which holds no MLmodel or config.json" in refused(tmp_path)


def test_what_is_no_model_at_all_is_refused(tmp_path):
    assert "a folder, not a model" in refused(tmp_path)
    assert "not found" in refused(tmp_path / "missing")


def test_a_deitkit_package_flattened_by_azure_model_import_is_read(tmp_path):
    from deitkit.packaging import package_model

    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", labels=LABELS)
    package = package_model(checkpoint, tmp_path / "package")
    imported = azure_model_import(package, tmp_path / "imported")
    files = model_files(imported)
    flat = (imported / "model").resolve()
    assert (files.layout, files.weights, files.processor) == (Layout.DEITKIT, flat, flat)
    assert load_classifier(imported, dtype="fp32").labels == LABELS
