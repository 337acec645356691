"""Environment assets: `version: auto`, a Docker build context that holds what it copies, pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from deitkit.assets.yaml_loading import Problems

CONTEXT_DIR = "context"
REQUIREMENTS_FILE = "requirements.txt"
# Azure's asset validator refuses extra indexes: a second index invites dependency confusion.
FORBIDDEN_TEXT = "extra-index-url"
_COPY = re.compile(r"^\s*(COPY|ADD)\s+(.*)$", re.I)


def check_environment(spec: dict[str, Any], spec_path: Path, folder: Path, problems: Problems):
    """Azure's rules for an environment spec: `version: auto`, a build context beside it.

    The Dockerfile must lie in the asset's `context/` folder (Azure's anatomy) inside the build
    context `build.path`, and every COPY/ADD source must exist in that build context.
    """
    if str(spec.get("version")) != "auto":
        problems.add(
            "version",
            f"expected auto (Azure ML versions environments), got {spec.get('version')!r}",
        )
    build = spec.get("build")
    if not isinstance(build, dict) or not build.get("path"):
        problems.add("build.path", "missing: environments are built from a Docker context")
        return
    context = (spec_path.parent / str(build["path"])).resolve()
    if not context.is_dir():
        problems.add("build.path", f"{build['path']} is not a folder (resolved to {context})")
        return
    dockerfile = context / str(build.get("dockerfile_path") or "Dockerfile")
    if not dockerfile.is_file():
        problems.add("build.dockerfile_path", f"no Dockerfile at {dockerfile}")
        return
    if not dockerfile.resolve().is_relative_to((folder / CONTEXT_DIR).resolve()):
        problems.add(
            "build.dockerfile_path",
            f"{dockerfile} is outside the asset's {CONTEXT_DIR}/ folder, where Azure ML's "
            "asset anatomy keeps it",
        )
    for line_no, source in dockerfile_sources(dockerfile):
        wildcard = any(ch in source for ch in "*?[")
        if not (any(context.glob(source)) if wildcard else (context / source).exists()):
            problems.add(
                "build",
                f"{dockerfile.name} line {line_no} copies {source}, which is not in "
                f"the build context {context}",
            )


def dockerfile_sources(dockerfile: Path) -> list[tuple[int, str]]:
    """(line, source) for every COPY/ADD source that comes from the build context."""
    sources = []
    logical, first = "", 0
    for number, raw in enumerate(dockerfile.read_text(encoding="utf-8").splitlines(), 1):
        if not logical:
            first = number
        logical += raw.rstrip("\\").strip() + " "
        if raw.rstrip().endswith("\\"):
            continue
        match = _COPY.match(logical)
        logical = ""
        if not match:
            continue
        words = [w for w in match.group(2).split() if not w.startswith("--")]
        if "--from" in match.group(2) or len(words) < 2 or words[0].startswith("["):
            continue  # another build stage, or the JSON form (not used here)
        sources += [(first, w) for w in words[:-1] if "://" not in w]
    return sources


def project_pins(root: Path) -> dict[str, str]:
    """Exact pins (`name==version`) of pyproject.toml (all extras) and constraints.txt.

    pyproject.toml wins where both pin a package; the names are canonical (PEP 503).
    """
    pins: dict[str, str] = {}
    constraints = root / "constraints.txt"
    if constraints.is_file():
        for line in constraints.read_text(encoding="utf-8").splitlines():
            pin = _pin(line)
            if pin:
                pins[pin[0]] = pin[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        lines = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            lines += extra
        for line in lines:
            pin = _pin(line)
            if pin:
                pins[pin[0]] = pin[1]
    return pins


def _pin(line: str) -> tuple[str, str] | None:
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return None
    specs = list(requirement.specifier)
    if len(specs) == 1 and specs[0].operator == "==":
        return canonicalize_name(requirement.name), specs[0].version
    return None


def check_requirements(path: Path, pins: dict[str, str], problems: Problems) -> dict[str, str]:
    """Every line of a requirements file is `name==version` with the project's version.

    Returns the file's pins (canonical name → version).
    """
    found: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"line {number}"
        pin = _pin(line)
        if pin is None:
            problems.add(where, f"{line!r} is not an exact pin name==version")
            continue
        name, version = pin
        found[name] = version
        if name not in pins:
            problems.add(where, f"{name} is pinned neither in pyproject.toml nor constraints.txt")
        elif pins[name] != version:
            problems.add(where, f"{name}=={version}, but the project pins {name}=={pins[name]}")
    return found
