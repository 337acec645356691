"""`deitkit package`: layout, signature, pinned requirements, no pickles, and loading it back."""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import save_tiny_checkpoint
from PIL import Image

from deitkit.errors import ConfigError
from deitkit.inference import Classifier, load_classifier, load_packaged, packaged_checkpoint
from deitkit.packaging import (
    OPTIONAL_IMPORTS,
    OPTIONAL_REQUIREMENTS,
    RUNTIME_REQUIREMENTS,
    example_image_base64,
    package_model,
)
from deitkit.tasks import Task

LABELS = ["blue", "green", "red"]
PICKLE_SUFFIXES = {".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib"}


def png_base64(colour, size=(20, 20)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


IMAGES = [png_base64((20, 40, 220)), png_base64((30, 200, 40)), png_base64((220, 30, 30))]


def multilabel(folder: Path) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config["problem_type"] = "multi_label_classification"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, package) of a tiny multiclass DeiT, with training leftovers in the folder."""

    root = tmp_path_factory.mktemp("package")
    checkpoint = save_tiny_checkpoint(root / "model", labels=LABELS)
    torch.save({"lr": 0.1}, checkpoint / "training_args.bin")
    torch.save({"state": {}}, checkpoint / "optimizer.pt")
    return checkpoint, package_model(checkpoint, root / "mlflow_model", threshold=0.4)


def test_the_package_holds_safetensors_and_no_pickles(packaged):
    _, model_dir = packaged
    files = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}

    checkpoint = {f for f in files if f.startswith("artifacts/")}
    assert checkpoint == {
        "artifacts/checkpoint/config.json",
        "artifacts/checkpoint/model.safetensors",
        "artifacts/checkpoint/preprocessor_config.json",
        "artifacts/checkpoint/deitkit.json",
        "artifacts/checkpoint/engines.json",  # no ONNX export: the suite turns it off
    }
    assert not {f for f in files if Path(f).suffix in PICKLE_SUFFIXES}
    assert not {f for f in files if "__pycache__" in f or f.endswith(".pyc")}
    assert {"MLmodel", "requirements.txt", "pyfunc_model.py", "input_example.json"} <= files
    assert "code/deitkit/inference/classifier.py" in files  # deitkit travels with the model
    described = json.loads((model_dir / "artifacts/checkpoint/deitkit.json").read_text())
    assert described["labels"] == LABELS and described["threshold"] == 0.4
    assert described["task"] == "image-classification"


def test_mlmodel_is_models_from_code_with_an_explicit_signature(packaged):
    _, model_dir = packaged
    spec = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = spec["flavors"]["python_function"]

    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in flavor  # no cloudpickled PythonModel
    assert json.loads(spec["signature"]["inputs"]) == [
        {"type": "string", "name": "image", "required": True}
    ]
    outputs = {c["name"]: c for c in json.loads(spec["signature"]["outputs"])}
    assert outputs["probs"]["items"] == {"type": "double"}
    assert outputs["labels"]["items"] == {"type": "string"}
    params = {p["name"]: p for p in json.loads(spec["signature"]["params"])}
    assert params["threshold"]["type"] == "double" and params["threshold"]["default"] == 0.4
    assert params["top_k"]["type"] == "long" and params["top_k"]["default"] is None
    assert spec["metadata"]["task"] == "image-classification"


def test_requirements_are_pinned_to_the_installed_versions(packaged):
    _, model_dir = packaged
    lines = (model_dir / "requirements.txt").read_text().split()
    pins = dict(line.split("==") for line in lines)

    assert set(pins) == {*RUNTIME_REQUIREMENTS, *OPTIONAL_REQUIREMENTS}  # onnxruntime is here
    assert pins["torch"] == torch.__version__.split("+")[0]
    assert pins["numpy"] == np.__version__ and pins["pandas"] == pd.__version__


def test_the_input_example_is_a_small_png(packaged):
    _, model_dir = packaged
    example = json.loads((model_dir / "input_example.json").read_text())
    assert example["columns"] == ["image"]
    image = Image.open(io.BytesIO(base64.b64decode(example["data"][0][0])))
    assert image.format == "PNG" and image.size == (16, 16)
    assert example["data"][0][0] == example_image_base64()


def test_pyfunc_predict_equals_the_classifier(packaged, monkeypatch):
    import mlflow

    checkpoint, model_dir = packaged
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_model prepends code/ to sys.path
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    frame = pyfunc.predict(pd.DataFrame({"image": IMAGES}), params={"top_k": 2})

    expected = Classifier.from_pretrained(checkpoint).predict_inputs(IMAGES)
    assert list(frame.columns) == ["probs", "labels", "predicted"] and len(frame) == 3
    for row, prediction in zip(frame.itertuples(), expected, strict=True):
        assert list(row.labels) == LABELS
        np.testing.assert_allclose(row.probs, prediction.probs, atol=1e-6)
        assert list(row.predicted) == prediction.predicted(top_k=2)


def test_pyfunc_reports_bad_input_by_image_index(packaged, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    _, model_dir = packaged
    monkeypatch.setattr(sys, "path", list(sys.path))
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    with pytest.raises(MlflowException, match=r"image 1: the text is not valid base64"):
        pyfunc.predict(pd.DataFrame({"image": [IMAGES[0], "%%%"]}))
    with pytest.raises(MlflowException, match=r"top_k must be an integer >= 1, got 0"):
        pyfunc.predict(pd.DataFrame({"image": IMAGES}), params={"top_k": 0})


def test_load_packaged_skips_mlflow_and_keeps_the_threshold(packaged):
    checkpoint, model_dir = packaged
    classifier = load_packaged(model_dir, dtype="float32")
    assert classifier.threshold == 0.4 and classifier.labels == LABELS
    assert packaged_checkpoint(model_dir) == (model_dir / "artifacts" / "checkpoint").resolve()
    assert load_classifier(model_dir, dtype="float32").labels == LABELS
    with pytest.raises(ConfigError, match="not a packaged model"):
        load_packaged(checkpoint)


@pytest.mark.slow
def test_the_package_loads_in_a_fresh_process_with_pickle_disallowed(packaged, tmp_path):
    checkpoint, model_dir = packaged
    script = tmp_path / "load.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, pickle, sys
            import torch

            def refuse(*args, **kwargs):
                raise RuntimeError("pickle deserialisation attempted")

            class RefusingUnpickler(pickle.Unpickler):
                load = refuse

            pickle.load = pickle.loads = torch.load = refuse
            pickle.Unpickler = RefusingUnpickler

            import mlflow
            import pandas as pd

            model = mlflow.pyfunc.load_model(sys.argv[1])
            frame = model.predict(pd.DataFrame({"image": json.loads(sys.argv[2])}))
            import deitkit
            print(json.dumps({"probs": frame["probs"].map(list).tolist(),
                              "deitkit": deitkit.__file__}))
            """
        )
    )
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, str(script), str(model_dir), json.dumps(IMAGES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # deitkit comes from the package's code/ folder, not from the installed copy.
    assert Path(result["deitkit"]).is_relative_to(model_dir / "code")
    expected = Classifier.from_pretrained(checkpoint).predict_inputs(IMAGES)
    np.testing.assert_allclose(result["probs"], [p.probs for p in expected], atol=1e-6)


def test_multilabel_package_applies_the_threshold_param(tiny_checkpoint, tmp_path, monkeypatch):
    import mlflow

    checkpoint = multilabel(tiny_checkpoint("vit", labels=LABELS))
    model_dir = package_model(checkpoint, tmp_path / "pkg")
    monkeypatch.setattr(sys, "path", list(sys.path))
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))

    low = pyfunc.predict(pd.DataFrame({"image": IMAGES}), params={"threshold": 0.0})
    high = pyfunc.predict(pd.DataFrame({"image": IMAGES}), params={"threshold": 1.0})
    capped = pyfunc.predict(pd.DataFrame({"image": IMAGES}), params={"threshold": 0.0, "top_k": 1})

    assert load_packaged(model_dir).task is Task.MULTILABEL
    assert [sorted(p) for p in low["predicted"]] == [sorted(LABELS)] * 3
    assert [list(p) for p in high["predicted"]] == [[], [], []]
    for row in capped.itertuples():
        assert list(row.predicted) == [LABELS[int(np.argmax(row.probs))]]


def test_pickled_weights_are_converted_to_safetensors(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file

    checkpoint = tiny_checkpoint("deit", labels=LABELS)
    expected = Classifier.from_pretrained(checkpoint, dtype="float32").predict_inputs(IMAGES)
    torch.save(load_file(checkpoint / "model.safetensors"), checkpoint / "pytorch_model.bin")
    (checkpoint / "model.safetensors").unlink()

    model_dir = package_model(checkpoint, tmp_path / "pkg")

    weights = model_dir / "artifacts" / "checkpoint"
    assert (weights / "model.safetensors").is_file() and not list(weights.glob("*.bin"))
    got = load_packaged(model_dir, dtype="float32").predict_inputs(IMAGES)
    np.testing.assert_allclose([p.probs for p in got], [p.probs for p in expected], atol=1e-6)


def test_an_existing_output_is_kept_unless_overwrite(packaged, tmp_path):
    checkpoint, _ = packaged
    output = tmp_path / "pkg"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists; choose a new folder or pass --overwr"):
        package_model(checkpoint, output)
    assert (output / "keep.txt").read_text() == "mine"

    package_model(checkpoint, output, overwrite=True)
    assert (output / "MLmodel").is_file() and not (output / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pkg"]  # no staging folder left behind


def test_unusable_checkpoints_are_refused(tiny_checkpoint, tmp_path):
    checkpoint = tiny_checkpoint("deit")
    with pytest.raises(ConfigError, match=r"threshold must be a number in \[0, 1\], got 2"):
        package_model(checkpoint, tmp_path / "a", threshold=2)
    (checkpoint / "preprocessor_config.json").unlink()
    with pytest.raises(ConfigError, match=r"has no preprocessor_config\.json"):
        package_model(checkpoint, tmp_path / "b")
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "preprocessor_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no model weights"):
        package_model(checkpoint, tmp_path / "c")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        package_model(tmp_path, tmp_path / "d")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# --- Azure's no-code MLflow route installs the package's requirements and nothing else --------


def _imports(path: Path) -> set[str]:
    """Modules `path` imports anywhere (inside functions too), except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"  # deitkit uses absolute ones
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def third_party_imports(code_root: Path, entry: Path) -> dict[str, set[str]]:
    """Top-level third-party module -> the files importing it, over the packaged code `entry`
    reaches (following every `deitkit.*` import into `code_root`)."""
    todo, seen, found = [entry], set(), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "deitkit":
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):  # each package's __init__ runs too
                    stem = code_root.joinpath(*parts[:depth])
                    todo += [
                        p for p in (stem / "__init__.py", stem.with_suffix(".py")) if p.is_file()
                    ]
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(path.relative_to(code_root.parent).as_posix())
    return found


def uncovered(imports: dict[str, set[str]], requirements: list[str]) -> dict[str, set[str]]:
    """The imported modules that no distribution named in `requirements` provides."""
    from importlib.metadata import packages_distributions

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    provides = packages_distributions()
    required = {canonicalize_name(Requirement(line).name) for line in requirements}
    return {
        module: files
        for module, files in imports.items()
        if not required & {canonicalize_name(d) for d in provides.get(module, [])}
    }


def test_the_requirements_cover_every_import_of_the_packaged_code(packaged):
    _, model_dir = packaged
    requirements = (model_dir / "requirements.txt").read_text().split()
    imports = third_party_imports(model_dir / "code", model_dir / "pyfunc_model.py")

    # The walk reaches the classifier through the pyfunc's function-level imports.
    assert {"mlflow", "pandas", "torch", "transformers", "PIL", "numpy", "yaml", "psutil"} <= set(
        imports
    )

    def missing(lines: list[str]) -> dict[str, set[str]]:
        # torchao is imported only where it is installed (the torch-int8 engine).
        found = uncovered(imports, lines)
        return {module: files for module, files in found.items() if module != "torchao"}

    assert "torchao" in OPTIONAL_IMPORTS and missing(requirements) == {}
    # Each requirement that provides an imported module is needed: without it, the check fails.
    needed = {line for line in requirements if missing([r for r in requirements if r != line])}
    assert needed == {line for line in requirements if not line.startswith("safetensors==")}
    without_psutil = [line for line in requirements if not line.startswith("psutil==")]
    assert missing(without_psutil) == {"psutil": {"code/deitkit/inference/threads.py"}}


# --- decisions: per-label thresholds and a temperature in the package -------------------------


def tree_digest(folder: Path) -> dict[str, str]:
    """relative path → sha256 of every file, and the folder's own entries."""
    import hashlib

    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def multilabel_package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multilabel")
    checkpoint = multilabel(save_tiny_checkpoint(root / "model", labels=LABELS, weight_std=0.3))
    return package_model(checkpoint, root / "mlflow_model")


def crossing_thresholds(probs) -> dict[str, float]:
    """Each label's threshold just past its probability, on the other side of 0.5."""
    return {
        label: p - 0.01 if p < 0.5 else min(p + 0.01, 1.0)
        for label, p in zip(LABELS, probs, strict=True)
    }


def test_package_model_writes_thresholds_and_temperature(tiny_checkpoint, tmp_path):
    checkpoint = multilabel(tiny_checkpoint("vit", labels=LABELS))
    thresholds = {"red": 0.7, "blue": 0.2, "green": 0.4}
    model_dir = package_model(
        checkpoint, tmp_path / "pkg", threshold=0.3, thresholds=thresholds, temperature=1.5
    )
    described = json.loads((model_dir / "artifacts/checkpoint/deitkit.json").read_text())
    assert described["thresholds"] == {"blue": 0.2, "green": 0.4, "red": 0.7}  # label order
    assert described["temperature"] == 1.5 and described["threshold"] == 0.3
    spec = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert spec["metadata"]["thresholds"] == described["thresholds"]
    assert spec["metadata"]["temperature"] == 1.5
    # MLflow passes a param's default when a request gives none: None lets the thresholds decide.
    params = {p["name"]: p for p in json.loads(spec["signature"]["params"])}
    assert params["threshold"].get("default") is None
    classifier = load_packaged(model_dir, dtype="float32")
    assert classifier.thresholds == (0.2, 0.4, 0.7) and classifier.temperature == 1.5


def test_package_model_refuses_bad_decisions_before_any_work(tiny_checkpoint, tmp_path):
    checkpoint = tiny_checkpoint("vit", labels=LABELS)  # multiclass
    with pytest.raises(ConfigError, match=r"^thresholds: per-label thresholds are for multilabel"):
        package_model(checkpoint, tmp_path / "a", thresholds=dict.fromkeys(LABELS, 0.5))
    with pytest.raises(ConfigError, match=r"^temperature must be a finite number > 0, got 0"):
        package_model(checkpoint, tmp_path / "a", temperature=0)
    assert not (tmp_path / "a").exists()


def test_with_decisions_copies_the_package_and_leaves_the_source_untouched(
    multilabel_package, tmp_path, monkeypatch
):
    import mlflow

    from deitkit.packaging import with_decisions

    before = tree_digest(multilabel_package)
    plain = load_packaged(multilabel_package, dtype="float32")
    probs = plain.with_decisions(temperature=2.0).predict_inputs(IMAGES[:1])[0].probs
    thresholds = crossing_thresholds(probs)

    copy = with_decisions(
        multilabel_package, tmp_path / "out" / "tuned", thresholds=thresholds, temperature=2.0
    )

    assert copy == tmp_path / "out" / "tuned"
    assert tree_digest(multilabel_package) == before  # not one byte of the source changed
    assert sorted(p.name for p in copy.parent.iterdir()) == ["tuned"]  # no staging left behind
    for path in (p for p in copy.rglob("*") if p.is_file()):
        source = multilabel_package / path.relative_to(copy)
        assert not source.exists() or not path.samefile(source)  # copies, never links
    described = json.loads((copy / "artifacts/checkpoint/deitkit.json").read_text())
    assert described["thresholds"] == thresholds and described["temperature"] == 2.0
    spec = yaml.safe_load((copy / "MLmodel").read_text())
    old_spec = yaml.safe_load((multilabel_package / "MLmodel").read_text())
    assert spec["metadata"]["thresholds"] == thresholds and spec["metadata"]["temperature"] == 2.0
    assert spec["model_uuid"] != old_spec["model_uuid"]
    assert spec["flavors"] == old_spec["flavors"]

    tuned = load_packaged(copy, dtype="float32")
    assert tuned.temperature == 2.0 and tuned.thresholds == tuple(thresholds.values())
    (prediction,) = tuned.predict_inputs(IMAGES[:1])
    np.testing.assert_allclose(prediction.probs, probs, atol=1e-6)
    under = [label for label, p in zip(LABELS, probs, strict=True) if p < 0.5]
    assert sorted(prediction.predicted()) == sorted(under)
    # The pyfunc (its own code/deitkit) decides with them unless the request's threshold is set.
    monkeypatch.setattr(sys, "path", list(sys.path))
    pyfunc = mlflow.pyfunc.load_model(str(copy))
    frame = pyfunc.predict(pd.DataFrame({"image": IMAGES[:1]}))
    assert sorted(frame["predicted"][0]) == sorted(under)
    np.testing.assert_allclose(frame["probs"][0], probs, atol=1e-6)
    overridden = pyfunc.predict(pd.DataFrame({"image": IMAGES[:1]}), params={"threshold": 0.5})
    assert sorted(overridden["predicted"][0]) == sorted(set(LABELS) - set(under))


def test_with_decisions_refuses_an_output_that_is_not_empty_or_inside(multilabel_package, tmp_path):
    from deitkit.packaging import with_decisions

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"taken: already exists and is not empty; choose a new"):
        with_decisions(multilabel_package, taken, temperature=2.0)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    with pytest.raises(ConfigError, match="lies inside the package"):
        with_decisions(multilabel_package, multilabel_package / "copy", temperature=2.0)
    with pytest.raises(ConfigError, match="nothing to set"):
        with_decisions(multilabel_package, tmp_path / "x")
    with pytest.raises(ConfigError, match=r"thresholds must name exactly .*missing \['red'\]"):
        with_decisions(multilabel_package, tmp_path / "x", thresholds={"blue": 0.1, "green": 0.1})
    with pytest.raises(ConfigError, match="not a packaged model"):
        with_decisions(tmp_path, tmp_path / "x", temperature=2.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert with_decisions(multilabel_package, empty, temperature=3.0) == empty
    assert load_packaged(empty).temperature == 3.0


def test_with_decisions_leaves_nothing_when_it_fails_midway(
    multilabel_package, tmp_path, monkeypatch
):
    import deitkit.packaging as packaging

    def broken(folder):
        raise OSError("disk full")

    monkeypatch.setattr(packaging, "_stage_code", broken)
    before = tree_digest(multilabel_package)
    with pytest.raises(OSError, match="disk full"):
        packaging.with_decisions(multilabel_package, tmp_path / "tuned", temperature=2.0)
    assert list(tmp_path.iterdir()) == []
    assert tree_digest(multilabel_package) == before
