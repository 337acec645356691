"""Environment assets: `version: auto`, a Docker build context that holds what it copies, locks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from deitkit.assets.yaml_loading import Problems

CONTEXT_DIR = "context"
REQUIREMENTS_FILE = "requirements.txt"
# Azure's asset validator refuses extra indexes: a second index invites dependency confusion.
FORBIDDEN_TEXT = "extra-index-url"
# The tested set (`make lock`), and the packages whose caps it lifts (see that file).
LOCK_FILE = "locks/py3.11.txt"
OVERRIDES_FILE = "locks/overrides.in"
# What PyPI's torch (its CUDA build, for the GPU images) brings beside it; the tested lock has
# the CPU build, which brings none of them.
CUDA_BUILD_PACKAGES = re.compile(r"^(nvidia-.+|cuda-.+|triton)$")
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


def project_pins(root: Path) -> dict[str, str | None]:
    """The tested set: each package of the lock LOCK_FILE, canonical name → public version.

    A package that locks/overrides.in lifts a dependency's cap for maps to None: an image lock
    may hold another version of it (the one the capping dependency admits).
    """
    pins: dict[str, str | None] = {}
    lock = root / LOCK_FILE
    if lock.is_file():
        for entry in _lock_entries(lock.read_text(encoding="utf-8")):
            pin = _pin(entry[1])
            if pin:
                pins[pin[0]] = pin[1]
    overrides = root / OVERRIDES_FILE
    if overrides.is_file():
        for line in overrides.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                pins[canonicalize_name(Requirement(line).name)] = None
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
        return canonicalize_name(requirement.name), Version(specs[0].version).public
    return None


def _lock_entries(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line, requirement, hashes) of each entry, continuation lines joined."""
    entries, logical, first = [], "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith("--hash") else raw
        if not logical:
            first = number
        logical += " " + line.strip().rstrip("\\")
        if raw.rstrip().endswith("\\"):
            continue
        words, logical = logical.split(), ""
        if words:
            hashes = [w.split("=", 1)[1] for w in words if w.startswith("--hash=")]
            requirement = " ".join(w for w in words if not w.startswith("--hash="))
            entries.append((first, requirement, hashes))
    return entries


def check_requirements(
    path: Path, pins: dict[str, str | None], problems: Problems
) -> dict[str, str]:
    """A requirements file is a lock: `name==version` with hashes, at the tested versions.

    Each package is at the version of the project's lock (`project_pins`; local labels such as
    `+cpu` aside: an image may take torch's CUDA build), or is one that torch's CUDA build
    brings (CUDA_BUILD_PACKAGES). Returns the file's pins (canonical name → public version).
    """
    found: dict[str, str] = {}
    for number, line, hashes in _lock_entries(path.read_text(encoding="utf-8")):
        where = f"line {number}"
        pin = _pin(line)
        if pin is None:
            problems.add(where, f"{line!r} is not an exact pin name==version")
            continue
        name, version = pin
        found[name] = version
        if not hashes:
            problems.add(where, f"{name} has no --hash: the file is not a lock (make lock)")
        if name not in pins:
            if not CUDA_BUILD_PACKAGES.match(name):
                problems.add(where, f"{name} is not in the project's lock {LOCK_FILE}")
        elif pins[name] not in (None, version):
            problems.add(where, f"{name}=={version}, but {LOCK_FILE} has {name}=={pins[name]}")
    return found
