"""The training and inference environments: pins equal pyproject.toml's, build contexts complete."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deitkit.assets.environments import (
    check_environment,
    check_requirements,
    dockerfile_sources,
    project_pins,
)
from deitkit.assets.manifest import default_manifest_path
from deitkit.assets.yaml_loading import Problems

REPO = default_manifest_path().parent
LOCK = REPO / "locks/py3.11.txt"


def lock_pins(path) -> dict[str, str]:
    """name → version of a lock file (the lines `name==version \\` that open its entries)."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            requirement = Requirement(line.rstrip("\\ "))
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier)[2:]
    return pins


def declared(*extras: str) -> set[str]:
    """The names pyproject.toml declares in its core dependencies and in `extras`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        d for e in extras for d in project["optional-dependencies"][e]
    ]
    return {canonicalize_name(Requirement(line).name) for line in lines}


@pytest.mark.parametrize("name", ["training", "inference"])
def test_each_image_installs_a_lock_at_the_tested_versions(name):
    path = REPO / "environments" / name / "context/requirements.txt"
    problems = Problems(str(path))
    found = check_requirements(path, project_pins(REPO), problems)
    assert list(problems) == []
    assert found["torch"] == "2.13.0"
    dockerfile = (path.parent / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r /tmp/deitkit/requirements.txt" in dockerfile


def test_the_training_image_holds_the_training_extras_and_the_cuda_torch():
    found = lock_pins(REPO / "environments/training/context/requirements.txt")
    assert declared("training", "onnx") <= set(found)
    assert found["torch"] == "2.13.0" and "nvidia-cudnn-cu13" in found
    # mltable's azureml-dataprep authenticates inside the job: its cap on azure-identity holds.
    assert found["azure-identity"] == "1.17.0"


def test_the_inference_image_holds_what_serving_imports_and_no_training_package():
    found = lock_pins(REPO / "environments/inference/context/requirements.txt")
    wanted = REPO / "environments/inference/context/requirements.in"
    names = {
        canonicalize_name(line) for line in wanted.read_text().split("\n") if line[:1].isalpha()
    }
    assert names <= set(found) and names <= declared("serving")
    assert found["torch"] == "2.13.0+cpu"
    for left_out in ("kornia", "deepspeed", "accelerate", "scikit-learn", "matplotlib", "onnx"):
        assert left_out not in found
    assert not any(name.startswith("nvidia-") for name in found)


def test_the_tested_lock_has_every_extra_and_the_cpu_torch():
    found = lock_pins(LOCK)
    assert declared("training", "serving", "azure", "onnx", "dev") <= set(found)
    assert found["torch"] == "2.13.0+cpu"
    assert not any(name.startswith(("nvidia-", "cuda-")) for name in found)


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_the_other_pythons_locks_agree_with_the_tested_one(version):
    # PyPI's torch is the only one for them: its CUDA build (tools/smoke_python.sh).
    found, tested = lock_pins(REPO / f"locks/py{version}.txt"), lock_pins(LOCK)
    assert declared() <= set(found)
    assert found["torch"] == "2.13.0"
    differ = {n for n in set(found) & set(tested) if found[n] != tested[n]}
    assert differ == {"torch"}


@pytest.mark.parametrize("name", ["training", "inference"])
def test_build_context_holds_what_the_dockerfile_copies(name):
    folder = REPO / "environments" / name
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    problems = Problems(f"environments/{name}/spec.yaml")
    check_environment(spec, folder / "spec.yaml", folder, problems)
    assert list(problems) == []
    sources = {source for _, source in dockerfile_sources(folder / "context/Dockerfile")}
    # deitkit is installed from the checkout: its sources travel in the build context.
    assert {"pyproject.toml", "README.md", "src"} <= sources
    assert f"environments/{name}/context/requirements.txt" in sources


def test_a_pin_that_drifts_is_named_by_line(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text(
        "# a lock\ntorch==2.12.0 \\\n    --hash=sha256:aa\nnumpy>=2\nleftpad==1.0 \\\n"
        "    --hash=sha256:bb\n    # via x\nPillow==13.0.0\nnvidia-cublas==13.1.1.3 \\\n"
        "    --hash=sha256:cc\nazure-identity==1.2.0 --hash=sha256:dd\n"
    )
    problems = Problems("requirements.txt")
    found = check_requirements(path, project_pins(REPO), problems)
    assert list(problems) == [
        "requirements.txt: line 2: torch==2.12.0, but locks/py3.11.txt has torch==2.13.0",
        "requirements.txt: line 4: 'numpy>=2' is not an exact pin name==version",
        "requirements.txt: line 5: leftpad is not in the project's lock locks/py3.11.txt",
        "requirements.txt: line 8: pillow has no --hash: the file is not a lock (make lock)",
    ]
    assert found == {
        "torch": "2.12.0",
        "leftpad": "1.0",
        "pillow": "13.0.0",
        "nvidia-cublas": "13.1.1.3",
        "azure-identity": "1.2.0",
    }


def test_project_pins_are_the_locks_public_versions_and_overrides_any(tmp_path):
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks/py3.11.txt").write_text(
        "# lock\ntorch==2.13.0+cpu \\\n    --hash=sha256:aa\n    # via x\n"
        "Azure_Identity==1.27.0 \\\n    --hash=sha256:bb\n"
    )
    (tmp_path / "locks/overrides.in").write_text("# why\nazure-identity>=1.17.0,<2\n")
    assert project_pins(tmp_path) == {"torch": "2.13.0", "azure-identity": None}


def test_dockerfile_sources_skip_other_stages_and_urls(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM base AS build\n"
        "COPY --chown=1000 a.txt \\\n    b/ /dst/\n"
        "COPY --from=build /x /y\n"
        "ADD https://example.org/f.tgz /f\n"
        'COPY ["c", "/d"]\n'
        "RUN echo COPY nothing\n"
    )
    assert dockerfile_sources(dockerfile) == [(2, "a.txt"), (2, "b/")]


def test_environment_rules_are_named_by_field(tmp_path):
    folder = tmp_path / "env"
    (folder / "context").mkdir(parents=True)
    (tmp_path / "Dockerfile").write_text("FROM x\nCOPY missing.txt /m\n")
    spec = {"version": 2, "build": {"path": "..", "dockerfile_path": "Dockerfile"}}
    problems = Problems("env/spec.yaml")
    check_environment(spec, folder / "spec.yaml", folder, problems)
    assert (
        problems[0]
        == "env/spec.yaml: version: expected auto (Azure ML versions environments), got 2"
    )
    assert (
        "build.dockerfile_path: " in problems[1] and "outside the asset's context/" in problems[1]
    )
    assert problems[2].startswith("env/spec.yaml: build: Dockerfile line 2 copies missing.txt")
