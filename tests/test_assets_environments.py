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
ENVIRONMENTS = {"training": ("training", "onnx"), "inference": ("serving", "onnx")}


def pyproject_pins(*extras: str) -> dict[str, str]:
    """Core dependencies plus `extras` of pyproject.toml, as canonical name → version."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        d for e in extras for d in project["optional-dependencies"][e]
    ]
    pins = {}
    for line in lines:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_requirements_pin_exactly_what_pyproject_pins(name):
    path = REPO / "environments" / name / "context/requirements.txt"
    problems = Problems(str(path))
    found = check_requirements(path, project_pins(REPO), problems)
    assert list(problems) == []
    # Every core dependency and every package of the environment's extras, no more.
    assert found == pyproject_pins(*ENVIRONMENTS[name])
    assert found["torch"] == "2.13.0"


def test_only_the_training_environment_has_deepspeed():
    training = REPO / "environments/training/context/requirements.txt"
    inference = REPO / "environments/inference/context/requirements.txt"
    assert "deepspeed==0.19.8" in training.read_text().splitlines()
    assert "deepspeed" not in inference.read_text()
    assert "azureml-inference-server-http==1.5.1" in inference.read_text().splitlines()


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_build_context_holds_what_the_dockerfile_copies(name):
    folder = REPO / "environments" / name
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    problems = Problems(f"environments/{name}/spec.yaml")
    check_environment(spec, folder / "spec.yaml", folder, problems)
    assert list(problems) == []
    sources = {source for _, source in dockerfile_sources(folder / "context/Dockerfile")}
    # deitkit is installed from the checkout: its sources travel in the build context.
    assert {"pyproject.toml", "README.md", "src", "constraints.txt"} <= sources
    assert f"environments/{name}/context/requirements.txt" in sources


def test_a_pin_that_drifts_is_named_by_line(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# pins\ntorch==2.12.0\nnumpy>=2\nleftpad==1.0\nPillow==13.0.0\n")
    problems = Problems("requirements.txt")
    found = check_requirements(path, project_pins(REPO), problems)
    assert list(problems) == [
        "requirements.txt: line 2: torch==2.12.0, but the project pins torch==2.13.0",
        "requirements.txt: line 3: 'numpy>=2' is not an exact pin name==version",
        "requirements.txt: line 4: leftpad is pinned neither in pyproject.toml nor constraints.txt",
    ]
    assert found == {"torch": "2.12.0", "leftpad": "1.0", "pillow": "13.0.0"}


def test_project_pins_take_pyproject_over_constraints(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["torch==2.13.0", "numpy>=2"]\n'
        '[project.optional-dependencies]\ntraining = ["DeepSpeed==0.19.8"]\n'
    )
    (tmp_path / "constraints.txt").write_text("torch==2.0.0\nfilelock==3.0 # why\n")
    assert project_pins(tmp_path) == {"torch": "2.13.0", "deepspeed": "0.19.8", "filelock": "3.0"}


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
