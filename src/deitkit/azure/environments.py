"""The repository's environments in a workspace: content-hashed versions, made when missing."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deitkit.assets.manifest import Manifest, load_manifest
from deitkit.azure.staging import staging_dir, write_folder
from deitkit.errors import ConfigError

log = logging.getLogger(__name__)

SPEC_FILE = "spec.yaml"
CONTEXT_DIR = "context"
# A version is the first 16 hex digits of the build context's SHA-256: 64 bits tell apart any
# two contexts a project will ever build, and the name stays short in the Studio's lists.
VERSION_DIGITS = 16
# Never part of an image: Python's byte-code caches differ between machines and runs.
ALWAYS_SKIPPED = ("__pycache__", ".pyc")
# `[azureml:]NAME@LABEL` or `[azureml:]NAME:VERSION`, the forms a YAML's `environment:` takes.
_REFERENCE = re.compile(
    r"^(?P<prefix>azureml:)?(?P<name>[A-Za-z0-9_.-]+)(?:@(?P<label>[\w.-]+)|:(?P<version>[\w.-]+))$"
)


@dataclass(frozen=True)
class BuildPlan:
    """One repository environment ready to register: where its build context was staged.

    `entity` is the azure-ai-ml Environment: the spec.yaml as written, with `version` the
    content hash and `build.path` the staged context (what Azure uploads and builds).
    """

    name: str
    version: str
    spec: Path
    context: Path
    entity: Any

    @property
    def reference(self) -> str:
        """The exact reference jobs and deployments are bound to: `azureml:NAME:VERSION`."""
        return f"azureml:{self.name}:{self.version}"


def repository_environments(manifest: Manifest | None = None) -> dict[str, Path]:
    """{environment name: its asset folder} for every environment the manifest indexes."""
    manifest = manifest or load_manifest()
    return {
        entry.name: manifest.path.parent / entry.path
        for entry in manifest.assets
        if entry.type == "environment"
    }


def referenced_name(reference: Any) -> str | None:
    """The environment name in a YAML's `environment:` value; None for inline or registry ones."""
    if not isinstance(reference, str):
        return None
    match = _REFERENCE.match(reference)
    return match["name"] if match else None


def plan_environments(names: set[str], manifest: Manifest | None = None) -> list[BuildPlan]:
    """A BuildPlan for each name that is one of the repository's environments; no Azure call.

    Names the manifest does not index (a user's own environment) are left out: the workspace
    is expected to hold them.

    Raises:
        ConfigError: an environment's folder, spec.yaml, Dockerfile or a file its Dockerfile
            copies is missing (the message names it and the fix).
    """
    known = repository_environments(manifest)
    return [plan_environment(known[name]) for name in sorted(names) if name in known]


def plan_environment(folder: Path) -> BuildPlan:
    """Stage `folder`'s build context (its Dockerfile and what that copies) and hash it.

    The staged copy lives in the deitkit cache under `azure/environments/NAME/VERSION/`,
    so it is written once per content and stays there to be inspected (or handed to
    `az ml environment create --set build.path=...`).
    """
    from azure.ai.ml import load_environment

    from deitkit.azure.entities import load_entity

    spec = folder / SPEC_FILE
    fix = (
        f"restore {folder} from the repository (spec.yaml and {CONTEXT_DIR}/Dockerfile), or "
        "register the environment yourself with `az ml environment create`"
    )
    if not spec.is_file():
        raise ConfigError(f"{spec}: the environment's spec is missing; {fix}")
    entity = load_entity(load_environment, spec)
    build = entity.build
    if build is None or not build.path:
        raise ConfigError(f"{spec}: no build context (build.path); {fix}")
    root = (spec.parent / str(build.path)).resolve()
    dockerfile = root / (build.dockerfile_path or "Dockerfile")
    if not dockerfile.is_file():
        raise ConfigError(f"{spec}: its Dockerfile {dockerfile} is missing; {fix}")
    files = context_files(root, dockerfile, spec)
    version = content_version(root, files)
    dest = staging_dir("environments", entity.name, version)
    context = write_folder(dest, _copy_files(root, files), replace=False)
    entity.version = version
    build.path = str(context)
    return BuildPlan(entity.name, version, spec, context, entity)


def context_files(root: Path, dockerfile: Path, spec: Path) -> list[Path]:
    """The files of the build context the image is made of: the Dockerfile and what it copies.

    Raises:
        ConfigError: a COPY/ADD source is not in the build context `root`.
    """
    from azure.ai.ml._utils._asset_utils import get_ignore_file

    from deitkit.assets.environments import dockerfile_sources

    ignore = get_ignore_file(root)  # .amlignore or .gitignore, as azure-ai-ml's upload reads them
    files = {dockerfile}
    for line, source in dockerfile_sources(dockerfile):
        matches = sorted(root.glob(source)) if any(c in source for c in "*?[") else [root / source]
        if not any(path.exists() for path in matches):
            raise ConfigError(
                f"{dockerfile} line {line} copies {source}, which is not in the build context "
                f"{root} ({spec}); restore it from the repository"
            )
        for path in matches:
            candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
            for file in candidates:
                if file.is_file() and not _skipped(file, root, ignore):
                    files.add(file)
    return sorted(files)


def content_version(root: Path, files: list[Path]) -> str:
    """The first VERSION_DIGITS hex digits of SHA-256 over each file's path and bytes."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:VERSION_DIGITS]


def register_missing(client: Any, plans: list[BuildPlan]) -> list[BuildPlan]:
    """Create each planned environment version the workspace lacks; the ones created.

    `environments.get(name, version=...)` answers ResourceNotFoundError for a missing version
    (a `label="latest"` lookup would raise ValidationException instead), so a second submit
    with the same build context finds its version and registers nothing.
    """
    from azure.core.exceptions import ResourceNotFoundError

    from deitkit.azure.submit import azure_call

    created = []
    for plan in plans:
        with azure_call(f"look up environment {plan.name}:{plan.version}"):
            try:
                client.environments.get(plan.name, version=plan.version)
                continue
            except ResourceNotFoundError:
                pass
        log.info("registering environment %s:%s from %s", plan.name, plan.version, plan.context)
        with azure_call(f"register environment {plan.name}:{plan.version}"):
            client.environments.create_or_update(plan.entity)
        created.append(plan)
    return created


def environment_names(entity: Any) -> set[str]:
    """The environments a deployment, a component, or every step of a (pipeline) job runs in."""
    return {name for _, reference in _runs_in(entity) if (name := referenced_name(reference))}


def bind(entity: Any, plans: list[BuildPlan]) -> None:
    """Point every reference to a planned environment at its exact version (not @latest).

    Each command step of a pipeline job is changed in place: the components are the ones
    `load_job` read for this submission, so the repository's YAMLs stay as they are.
    """
    references = {plan.name: plan.reference for plan in plans}
    for holder, reference in _runs_in(entity):
        name = referenced_name(reference)
        if name in references:
            holder.environment = references[name]


def _runs_in(entity: Any) -> list[tuple[Any, str]]:
    """(object with `.environment`, its reference) for an entity and, in a job, its steps."""
    found = []
    environment = getattr(entity, "environment", None)
    if isinstance(environment, str):
        found.append((entity, environment))
    component = getattr(entity, "component", None)
    if component is not None and not isinstance(component, str):  # a str: a registry's
        found += _runs_in(component)
    for node in (getattr(entity, "jobs", None) or {}).values():
        found += _runs_in(node)
    return found


def _skipped(file: Path, root: Path, ignore: Any) -> bool:
    if file.name.endswith(ALWAYS_SKIPPED) or ALWAYS_SKIPPED[0] in file.relative_to(root).parts:
        return True
    return ignore.exists() and ignore.is_file_excluded(file)


def _copy_files(root: Path, files: list[Path]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        for file in files:
            target = folder / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)

    return write
