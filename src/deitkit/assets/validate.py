"""`deitkit assets validate`: every asset loaded with azure-ai-ml and held to Azure's rules."""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from deitkit.assets.commands import check_command, check_input_declarations
from deitkit.assets.endpoints import check_deployment, load_by_schema
from deitkit.assets.environments import (
    CONTEXT_DIR,
    FORBIDDEN_TEXT,
    REQUIREMENTS_FILE,
    check_environment,
    check_requirements,
    project_pins,
)
from deitkit.assets.manifest import (
    MANIFEST_FILE,
    IndexedAsset,
    Manifest,
    check_asset_index,
    check_model_assets,
    default_manifest_path,
    load_manifest,
)
from deitkit.assets.pipelines import check_pipeline
from deitkit.assets.sku_gate import check_sku
from deitkit.assets.yaml_loading import Problems, load_entity, read_yaml
from deitkit.errors import ConfigError
from deitkit.skus import Catalog, Purpose, load_catalog

ASSET_FILE = "asset.yaml"
DESCRIPTION_FILE = "description.md"
ASSET_ROOTS = ("components", "environments", "endpoints")
MAX_FILE_BYTES = 1024 * 1024  # Azure's asset validator refuses files over 1 MB
# The model-running step a component is, by its name's ending; others need only a known size.
STEP_PURPOSES = {"_finetune": Purpose.FINETUNE, "_evaluate": Purpose.EVALUATION}
_ENVIRONMENT_REF = re.compile(
    r"^azureml:(?P<name>[A-Za-z0-9_.-]+)(@latest|:[A-Za-z0-9_.-]+)$"
    r"|^azureml://registries/[^/]+/environments/(?P<registry_name>[^/]+)/(versions/[^/]+|labels/latest)$"
)


@dataclass
class ValidationReport:
    """What `validate_assets` found: problems as `FILE: FIELD: why`, and what it checked."""

    root: Path
    problems: list[str] = field(default_factory=list)
    checked: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        kinds = ("models", "components", "environments", "endpoints")
        counts = ", ".join(f"{self.checked[k]} {k}" for k in kinds if self.checked[k])
        if self.ok:
            return f"ok: {counts} checked under {self.root}"
        return f"{len(self.problems)} problem(s) ({counts} checked under {self.root})"


def validate_assets(
    root: str | Path | None = None,
    *,
    cli: click.Group,
    catalog: Catalog | None = None,
) -> ValidationReport:
    """Check every asset of the repository at `root` (default: this checkout).

    Loads assets.yaml, each model asset with `load_model` and each indexed component,
    environment and endpoint YAML with its azure-ai-ml loader, then checks Azure's asset
    anatomy and naming rules, the SKU invariants and allow-lists, environment build contexts
    and pins, pipeline bindings, and every flag the components pass to the CLI.

    Args:
        root: The repository root holding assets.yaml; default: this checkout.
        cli: The `deitkit` click group the components' commands are checked against; the
            caller passes it in (the command passes its own root) so the library never
            imports the CLI.
        catalog: The VM size catalog; default: the one deitkit ships.

    Raises:
        ConfigError: `root` has no assets.yaml, or it is malformed.
    """
    root = Path(root) if root is not None else default_manifest_path().parent
    if not (root / MANIFEST_FILE).is_file():
        raise ConfigError(f"{root}: no {MANIFEST_FILE} here; pass the repository root (--root)")
    checker = _Checker(root.resolve(), load_manifest(root / MANIFEST_FILE), cli, catalog)
    checker.run()
    return ValidationReport(root, checker.problems, checker.checked)


class _Checker:
    def __init__(self, root: Path, manifest: Manifest, cli: click.Group, catalog: Catalog | None):
        self.root, self.manifest, self.cli = root, manifest, cli
        self.catalog = catalog or load_catalog()
        self.problems: list[str] = []
        self.checked: Counter = Counter()
        self.pins = project_pins(root)
        self.folders = {(root / a.path).resolve(): a for a in manifest.assets}
        self.problems_lists: list[Problems] = []

    def rel(self, path: Path) -> str:
        path = path.resolve() if path.is_absolute() else (self.root / path).resolve()
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def problems_for(self, path: Path) -> Problems:
        problems = Problems(self.rel(path))
        self.problems_lists.append(problems)
        return problems

    def run(self) -> None:
        self.problems += check_model_assets(self.manifest, catalog=self.catalog)
        self.problems += check_asset_index(self.manifest, root=self.root)
        for model in self.manifest.models:
            self._check_model(model)
        for asset in self.manifest.assets:
            folder = (self.root / asset.path).resolve()
            if folder.is_dir():
                self._check_asset(asset, folder)
        self._check_unindexed()
        for problems in self.problems_lists:
            self.problems += problems

    def _check_model(self, model) -> None:
        doc = {
            "name": model.name,
            "version": model.version,
            "type": "mlflow_model",
            "description": model.description,
            "tags": dict(model.tags),
            "properties": dict(model.properties),
        }
        problems = Problems(f"{model.file}: models[{model.index}]")
        self.problems_lists.append(problems)
        load_entity("model", io.StringIO(yaml.safe_dump(doc)), problems)
        self.checked["models"] += 1

    # -- anatomy ---------------------------------------------------------------------------
    def _check_asset(self, asset: IndexedAsset, folder: Path) -> None:
        problems = self.problems_for(folder / ASSET_FILE)
        meta = self._asset_file(asset, folder, problems)
        self._check_files(folder)
        if meta is None:
            return
        spec_path = folder / str(meta.get("spec") or "")
        if asset.type == "component":
            self._check_component(asset, folder, spec_path)
        elif asset.type == "environment":
            self._check_environment(asset, folder, spec_path)
        elif asset.type == "endpoint":
            self._check_endpoint(asset, folder, spec_path, meta)
        self.checked[f"{asset.type}s"] += 1

    def _asset_file(self, asset: IndexedAsset, folder: Path, problems: Problems):
        if not (folder / ASSET_FILE).is_file():
            problems.add(None, f"missing: every asset folder holds {ASSET_FILE} beside its spec")
            return None
        meta = read_yaml(folder / ASSET_FILE, problems)
        if meta is None:
            return None
        if meta.get("type") != asset.type:
            problems.add("type", f"{meta.get('type')!r}, but assets.yaml indexes a {asset.type}")
        categories = meta.get("categories")
        if (
            not isinstance(categories, list)
            or not categories
            or not all(isinstance(c, str) and c.strip() for c in categories)
        ):
            problems.add("categories", f"expected a non-empty list of names, got {categories!r}")
        for key in ("spec", "extra_config"):
            if key in meta and not (folder / str(meta[key])).is_file():
                problems.add(key, f"{meta[key]!r}: no such file in {self.rel(folder)}")
        if not meta.get("spec"):
            problems.add("spec", "missing: the file holding the Azure ML entity")
            return None
        for key in ("name", "version"):
            if key in meta and str(meta[key]) != getattr(asset, key):
                problems.add(key, f"{meta[key]!r}, but assets.yaml has {getattr(asset, key)!r}")
        description = folder / DESCRIPTION_FILE
        if not description.is_file() or not description.read_text(encoding="utf-8").strip():
            problems.add(None, f"{DESCRIPTION_FILE} is missing or empty")
        return meta if (folder / str(meta["spec"])).is_file() else None

    def _check_files(self, folder: Path) -> None:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                self.problems_for(path).add(None, f"{path.stat().st_size} bytes; the limit is 1 MB")
            elif path.suffix in {".txt", ".yaml", ".yml", ""} or path.name == "Dockerfile":
                text = path.read_text(encoding="utf-8", errors="replace")
                for number, line in enumerate(text.splitlines(), 1):
                    if FORBIDDEN_TEXT in line:
                        self.problems_for(path).add(
                            f"line {number}", f"{FORBIDDEN_TEXT} is not allowed in assets"
                        )

    def _check_unindexed(self) -> None:
        for top in ASSET_ROOTS:
            for folder in sorted(p for p in (self.root / top).glob("*") if p.is_dir()):
                has_spec = any(folder.glob("*.y*ml"))
                if has_spec and folder.resolve() not in self.folders:
                    what = "" if (folder / ASSET_FILE).is_file() else f" (and has no {ASSET_FILE})"
                    self.problems_for(folder).add(None, f"not in {MANIFEST_FILE}'s index{what}")

    def _same_identity(self, asset: IndexedAsset, spec: dict, problems: Problems, *keys) -> None:
        for key in keys:
            if str(spec.get(key)) != getattr(asset, key):
                problems.add(
                    key, f"{spec.get(key)!r}, but assets.yaml indexes {getattr(asset, key)!r}"
                )

    # -- components ------------------------------------------------------------------------
    def _check_component(self, asset: IndexedAsset, folder: Path, spec_path: Path) -> None:
        problems = self.problems_for(spec_path)
        spec = read_yaml(spec_path, problems)
        if spec is None:
            return
        self._same_identity(asset, spec, problems, "name", "version")
        declared = check_input_declarations(spec, problems)
        before = len(problems)
        load_entity("component", spec_path, problems)
        if not declared:  # azure-ai-ml's unlocated complaints repeat what the precheck named
            problems[before:] = [p for p in problems[before:] if "azure-ai-ml refuses" not in p]
        if spec.get("type") == "command":
            self._check_environment_ref(spec.get("environment"), "environment", problems)
            check_command(spec, problems, self.cli)
        elif spec.get("type") == "pipeline":
            check_pipeline(
                spec,
                problems,
                resolve=lambda ref: self._component_spec(ref, spec_path),
                check_size=lambda f, size, comp: self._check_size(problems, f, size, comp),
            )

    def _component_spec(self, ref: str, base: Path) -> dict[str, Any] | None:
        for asset in self.manifest.of_type("component"):
            folder = (self.root / asset.path).resolve()
            named = (
                ref.startswith("azureml:")
                and ref[len("azureml:") :].split(":")[0].split("@")[0] == asset.name
            )
            if named or (base.parent / ref).resolve() == folder / "spec.yaml":
                return read_yaml(folder / "spec.yaml", Problems(self.rel(folder)))
        return None

    def _check_size(self, problems: Problems, field_: str, size: str, component: str) -> None:
        purpose = next((p for end, p in STEP_PURPOSES.items() if component.endswith(end)), None)
        self.check_sku_field(problems, field_, size, purpose)

    def check_sku_field(self, problems: Problems, field_: str, size: str, purpose) -> None:
        """`size` must be a known VM size, and on every model's allow-list for `purpose`."""
        if size not in self.catalog:
            problems.add(field_, f"unknown Azure VM size {size!r}: {self.catalog.suggest(size)}")
            return
        for model in self.manifest.models if purpose else ():
            try:
                result = check_sku(
                    size, purpose, model=model.name, manifest=self.manifest, catalog=self.catalog
                )
            except ConfigError:
                continue  # a broken allow-list: check_model_assets names it
            if not result.allowed:
                nearest = ", ".join(s.name for s in result.alternatives)
                problems.add(
                    field_,
                    f"{size} is not in {model.name}'s "
                    f"{purpose.allow_list_tag}; closest allowed: {nearest}",
                )

    def _check_environment_ref(self, ref: Any, field_: str, problems: Problems) -> None:
        names = {a.name for a in self.manifest.of_type("environment")}
        match = _ENVIRONMENT_REF.match(ref) if isinstance(ref, str) else None
        name = match and (match.group("name") or match.group("registry_name"))
        if not name or name not in names:
            problems.add(
                field_,
                f"{ref!r}: expected azureml:NAME@latest (or :VERSION, or a "
                f"registry path) of an indexed environment: {', '.join(sorted(names))}",
            )

    # -- environments ----------------------------------------------------------------------
    def _check_environment(self, asset: IndexedAsset, folder: Path, spec_path: Path) -> None:
        problems = self.problems_for(spec_path)
        spec = read_yaml(spec_path, problems)
        if spec is None:
            return
        self._same_identity(asset, spec, problems, "name")
        load_entity("environment", spec_path, problems)
        check_environment(spec, spec_path, folder, problems)
        requirements = folder / CONTEXT_DIR / REQUIREMENTS_FILE
        if requirements.is_file() and self.pins:
            check_requirements(requirements, self.pins, self.problems_for(requirements))

    # -- endpoints -------------------------------------------------------------------------
    def _check_endpoint(self, asset, folder: Path, spec_path: Path, meta: dict) -> None:
        endpoint = load_by_schema(spec_path, self.problems_for(spec_path), "endpoint")
        if endpoint is None:
            return
        meta_problems = self.problems_for(folder / ASSET_FILE)
        if "version" not in meta:
            meta_problems.add("version", "missing (the endpoint YAML has none)")
        self._same_identity(asset, endpoint, self.problems_for(spec_path), "name")
        if not meta.get("extra_config"):
            meta_problems.add("extra_config", "missing: the deployment YAML")
            return
        path = folder / str(meta["extra_config"])
        problems = self.problems_for(path)
        deployment = load_by_schema(path, problems, "deployment")
        if deployment is not None:
            check_deployment(
                endpoint,
                deployment,
                path,
                problems,
                check_environment=self._check_environment_ref,
                check_size=lambda p, f, size: self.check_sku_field(p, f, size, Purpose.INFERENCE),
            )
