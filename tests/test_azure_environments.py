"""Environments in a workspace: a content-hash version, registered once, jobs bound to it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from azure.ai.ml import load_environment, load_online_deployment
from azure.ai.ml.exceptions import ValidationException
from azure.core.exceptions import ResourceNotFoundError
from azure_mock import MockMLClient

from deitkit.azure import environments as envs
from deitkit.azure import pipeline
from deitkit.errors import ConfigError
from deitkit.tasks import Task

REPO = Path(__file__).resolve().parent.parent
TRAINING = "deitkit-image-classification-training"
INFERENCE = "deitkit-image-classification-inference"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def repo(tmp_path) -> Path:
    """A small repository: the real training environment over a few stand-in source files."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "environments" / "training", root / "environments" / "training")
    for name in ("pyproject.toml", "README.md"):
        (root / name).write_text(f"{name}\n")
    (root / "src" / "deitkit").mkdir(parents=True)
    (root / "src" / "deitkit" / "__init__.py").write_text("VERSION = 1\n")
    (root / ".gitignore").write_text("*.log\n")
    return root


def test_version_is_a_hash_of_what_the_image_is_built_from(repo):
    plan = envs.plan_environment(repo / "environments" / "training")
    assert plan.name == TRAINING and len(plan.version) == envs.VERSION_DIGITS
    assert plan.entity.version == plan.version != "auto"  # azure-ai-ml would send "auto" as is
    assert plan.reference == f"azureml:{TRAINING}:{plan.version}"
    staged = {
        p.relative_to(plan.context).as_posix() for p in plan.context.rglob("*") if p.is_file()
    }
    assert staged == {
        "environments/training/context/Dockerfile",
        "environments/training/context/requirements.txt",
        "pyproject.toml",
        "README.md",
        "src/deitkit/__init__.py",
    }
    assert Path(plan.entity.build.path) == plan.context
    assert plan.entity.build.dockerfile_path == "environments/training/context/Dockerfile"
    # Byte-code, ignored files and files the Dockerfile never copies change nothing.
    (repo / "src" / "deitkit" / "__pycache__").mkdir()
    (repo / "src" / "deitkit" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (repo / "src" / "deitkit" / "run.log").write_text("log\n")
    (repo / "docs.md").write_text("not copied\n")
    assert envs.plan_environment(repo / "environments" / "training").version == plan.version
    (repo / "src" / "deitkit" / "__init__.py").write_text("VERSION = 2\n")
    assert envs.plan_environment(repo / "environments" / "training").version != plan.version


@pytest.mark.parametrize(
    "missing, message",
    [
        ("environments/training/spec.yaml", "the environment's spec is missing; restore"),
        ("environments/training/context/Dockerfile", "its Dockerfile .* is missing; restore"),
        ("README.md", "copies README.md, which is not in the build context"),
    ],
)
def test_a_missing_piece_is_one_line_naming_the_fix(repo, missing, message):
    (repo / missing).unlink()
    with pytest.raises(ConfigError, match=message) as err:
        envs.plan_environment(repo / "environments" / "training")
    assert "\n" not in str(err.value)


def test_registered_once_then_found(repo):
    plans = [envs.plan_environment(repo / "environments" / "training")]
    client = MockMLClient()
    assert envs.register_missing(client, plans) == plans
    (call,) = client.of("environments", "create_or_update")
    assert call.entity.version == plans[0].version
    assert envs.register_missing(client, plans) == []  # the second submit registers nothing
    assert len(client.of("environments", "create_or_update")) == 1


def test_the_mock_answers_lookups_as_azure_ai_ml_does(repo):
    client = MockMLClient()
    with pytest.raises(ValidationException, match=f"Asset {TRAINING} does not exist in workspace"):
        client.environments.get(TRAINING, label="latest")
    with pytest.raises(ResourceNotFoundError):
        client.environments.get(TRAINING, version="1")
    plan = envs.plan_environment(repo / "environments" / "training")
    envs.register_missing(client, [plan])
    assert client.environments.get(TRAINING, label="latest").version == plan.version
    echoed = client.environments.get(TRAINING, version=plan.version)
    assert echoed.path.startswith("https://") and echoed.path.endswith("/")


def test_repository_environments_are_the_manifests():
    assert set(envs.repository_environments()) == {TRAINING, INFERENCE}
    assert envs.plan_environments({"someone-elses-env"}) == []


def test_jobs_and_deployments_are_bound_to_the_exact_version():
    plans = envs.plan_environments({TRAINING, INFERENCE})
    versions = {plan.name: plan.reference for plan in plans}
    request = pipeline.FinetuneRequest(
        task=Task.MULTICLASS,
        training_data="azureml:t:1",
        validation_data="azureml:v:1",
        instance_type="Standard_NC6s_v3",
    )
    job = pipeline.load_finetune_job(
        pipeline.finetune_job_document(request, pipeline.pipeline_component_path(Task.MULTICLASS))
    )
    assert envs.environment_names(job) == {TRAINING}
    envs.bind(job, plans)
    steps = job.jobs[pipeline.NODE].component.jobs
    assert {step.component.environment for step in steps.values()} == {versions[TRAINING]}

    deployment = load_online_deployment(REPO / "endpoints" / "online" / "deployment.yml")
    envs.bind(deployment, plans)
    assert deployment.environment == versions[INFERENCE]
    deployment.environment = "azureml:my-own-env@latest"
    envs.bind(deployment, plans)
    assert deployment.environment == "azureml:my-own-env@latest"


def test_the_staged_environment_loads_and_builds_from_its_own_context():
    (plan,) = envs.plan_environments({INFERENCE})
    loaded = load_environment(REPO / "environments" / "inference" / "spec.yaml")
    assert loaded.version == "auto"  # the repository keeps Azure's asset convention
    assert (plan.context / plan.entity.build.dockerfile_path).is_file()
    assert (plan.context / "src" / "deitkit" / "azure" / "environments.py").is_file()
    assert not list(plan.context.rglob("__pycache__"))
