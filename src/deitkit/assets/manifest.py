"""The asset manifest `assets.yaml` read into typed values: model assets and the asset index."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import yaml

from deitkit.errors import ConfigError
from deitkit.skus import Catalog, Purpose, load_catalog, min_spec, parse_spec
from deitkit.tasks import Task

MANIFEST_FILE = "assets.yaml"
# The flagship model asset: the one the SKU gate and `deitkit sku check` use unless told.
DEFAULT_MODEL = "facebook-deit-base-patch16-224"
# Azure ML's asset validator: model names may use capitals, every other asset is lowercase.
MODEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,254}$")
ASSET_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,254}$")
ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{2,31}$")  # Azure ML endpoint naming rule
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
ASSET_TYPES = ("component", "environment", "endpoint")
REQUIRED_TAGS = ("task", "license")

_TOP_KEYS = {"models", "assets"}
_MODEL_KEYS = {"name", "version", "description", "tags", "properties"}
_INDEX_KEYS = {"type", "name", "version", "path"}


@dataclass(frozen=True)
class ModelAsset:
    """A model asset: Azure ML's `tags` and `properties` verbatim, and where it was read."""

    name: str
    version: str
    tags: Mapping[str, Any]
    properties: Mapping[str, Any]
    file: str
    index: int
    description: str = ""

    def field(self, *parts: str) -> str:
        """`FILE: models[I].PART...`, how every message about this asset says where."""
        return f"{self.file}: models[{self.index}]" + "".join(f".{p}" for p in parts)

    def allow_list(self, purpose: Purpose) -> tuple[str, ...]:
        """The `<purpose>_compute_allow_list` tag, in file order; ConfigError when malformed."""
        value = self.tags.get(purpose.allow_list_tag)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{self.field('tags', purpose.allow_list_tag)}: expected a non-empty list of "
                f"VM size names, got {value!r}"
            )
        return tuple(value)

    def recommended(self, purpose: Purpose) -> tuple[str, ...] | None:
        """The `<purpose>-recommended-sku` property split on commas, or None when absent."""
        value = self.properties.get(purpose.recommended_property)
        if value is None:
            return None
        return tuple(name.strip() for name in str(value).split(",") if name.strip())

    def min_sku_spec(self, purpose: Purpose) -> str | None:
        """The `<purpose>-min-sku-spec` property as written, or None when absent."""
        value = self.properties.get(purpose.min_spec_property)
        return None if value is None else str(value)


@dataclass(frozen=True)
class IndexedAsset:
    """One entry of the `assets:` index: a component, environment or endpoint folder."""

    type: str
    name: str
    version: str
    path: str
    index: int


@dataclass(frozen=True)
class Manifest:
    """assets.yaml as typed values; `path` is the file it was read from."""

    path: Path
    models: tuple[ModelAsset, ...]
    assets: tuple[IndexedAsset, ...]

    def model(self, name: str) -> ModelAsset:
        """The model asset called `name`; ConfigError naming the known ones otherwise."""
        for asset in self.models:
            if asset.name == name:
                return asset
        known = ", ".join(a.name for a in self.models) or "none"
        raise ConfigError(f"{self.path}: no model asset named {name!r}; known: {known}")

    def of_type(self, asset_type: str) -> tuple[IndexedAsset, ...]:
        return tuple(a for a in self.assets if a.type == asset_type)


def default_manifest_path() -> Path:
    """The repository's assets.yaml, found from this source checkout.

    An installed deitkit has none (the package ships no copy), so callers outside a checkout
    pass the path.
    """
    checkout = Path(__file__).resolve().parents[3] / MANIFEST_FILE  # src/deitkit/assets/ → root
    if checkout.is_file():
        return checkout
    raise ConfigError(f"cannot find {MANIFEST_FILE} beside the deitkit source; pass its path")


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read assets.yaml into typed values; errors name the file and the field.

    Only the shape is checked here; `check_model_assets` and `check_asset_index` report the
    content problems (SKU invariants, names, versions) all at once.
    """
    path = Path(path) if path is not None else default_manifest_path()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the asset manifest: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    file = str(path)
    _require_mapping(doc, file, "the top level", _TOP_KEYS)
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{file}: models: expected a non-empty list of model assets")
    index = doc.get("assets") or []
    if not isinstance(index, list):
        raise ConfigError(f"{file}: assets: expected a list of {{type, name, version, path}}")
    return Manifest(
        path=path,
        models=tuple(_model(entry, file, i) for i, entry in enumerate(models)),
        assets=tuple(_indexed(entry, file, i) for i, entry in enumerate(index)),
    )


def _require_mapping(value: Any, file: str, field: str, keys: set[str]) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: {field}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(map(str, value)) - keys)
    if unknown:
        raise ConfigError(
            f"{file}: {field}: unknown key {unknown[0]!r}; expected: {', '.join(sorted(keys))}"
        )


def _scalar(entry: dict, key: str, file: str, field: str) -> str:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise ConfigError(f"{file}: {field}.{key}: expected a non-empty string, got {value!r}")
    return str(value)


def _model(entry: Any, file: str, i: int) -> ModelAsset:
    field = f"models[{i}]"
    _require_mapping(entry, file, field, _MODEL_KEYS)
    for key in ("tags", "properties"):
        if not isinstance(entry.get(key, {}), dict):
            raise ConfigError(f"{file}: {field}.{key}: expected a mapping")
    return ModelAsset(
        name=_scalar(entry, "name", file, field),
        version=_scalar(entry, "version", file, field),
        tags=MappingProxyType(dict(entry.get("tags") or {})),
        properties=MappingProxyType(dict(entry.get("properties") or {})),
        file=file,
        index=i,
        description=str(entry.get("description") or ""),
    )


def _indexed(entry: Any, file: str, i: int) -> IndexedAsset:
    field = f"assets[{i}]"
    _require_mapping(entry, file, field, _INDEX_KEYS)
    values = {key: _scalar(entry, key, file, field) for key in sorted(_INDEX_KEYS)}
    return IndexedAsset(index=i, **values)


def check_model_assets(manifest: Manifest, *, catalog: Catalog | None = None) -> list[str]:
    """Every problem with the model assets, each as `FILE: models[I].FIELD: what is wrong`.

    Checks Azure ML's required tags and name rule, and per purpose the SKU invariants: every
    allow-listed size is in the catalog, the min-SKU spec equals the per-field minimum over
    the allow-list, and the recommended SKUs equal the allow-list as a set.
    """
    catalog = catalog or load_catalog()
    problems: list[str] = []
    for name, count in Counter(m.name for m in manifest.models).items():
        if count > 1:
            problems.append(f"{manifest.path}: models: {name!r} is listed {count} times")
    for asset in manifest.models:
        problems += _check_identity(asset)
        for purpose in Purpose:
            problems += _check_purpose(asset, purpose, catalog)
    return problems


def _check_identity(asset: ModelAsset) -> list[str]:
    problems = []
    if not MODEL_NAME.match(asset.name):
        problems.append(
            f"{asset.field('name')}: {asset.name!r} does not match {MODEL_NAME.pattern}"
        )
    problems += [
        f"{asset.field('tags', tag)}: required tag is missing or empty"
        for tag in REQUIRED_TAGS
        if not asset.tags.get(tag)
    ]
    tasks = {t.value for t in Task}
    task = asset.tags.get("task")
    if task and task not in tasks:
        problems.append(f"{asset.field('tags', 'task')}: {task!r} is not one of {sorted(tasks)}")
    for task in str(asset.properties.get("finetuning-tasks") or "").split(","):
        if task.strip() and task.strip() not in tasks:
            problems.append(
                f"{asset.field('properties', 'finetuning-tasks')}: {task.strip()!r} is not one "
                f"of {sorted(tasks)}"
            )
    defaults = asset.tags.get("model_specific_defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        problems.append(
            f"{asset.field('tags', 'model_specific_defaults')}: expected a mapping of strings "
            f"(Azure passes them to components as string inputs), got {defaults!r}"
        )
    return problems


def _check_purpose(asset: ModelAsset, purpose: Purpose, catalog: Catalog) -> list[str]:
    try:
        allowed = asset.allow_list(purpose)
    except ConfigError as err:
        return [str(err)]
    problems = []
    list_field = asset.field("tags", purpose.allow_list_tag)
    for name, count in Counter(allowed).items():
        if count > 1:
            problems.append(f"{list_field}: {name} is listed {count} times")
    unknown = [(i, n) for i, n in enumerate(allowed) if n not in catalog]
    problems += [
        f"{list_field}[{i}]: {n} is not in the VM size catalog ({catalog.suggest(n)})"
        for i, n in unknown
    ]

    spec_field = asset.field("properties", purpose.min_spec_property)
    written = asset.min_sku_spec(purpose)
    if written is None:
        problems.append(f"{spec_field}: missing")
    elif not unknown:  # the minimum over a partly unknown list would mislead
        computed = min_spec(allowed, catalog=catalog)
        try:
            matches = parse_spec(written) == parse_spec(computed)
        except ValueError as err:
            problems.append(f"{spec_field}: {err}")
        else:
            if not matches:
                problems.append(f"{spec_field}: {written} != computed {computed}")

    rec_field = asset.field("properties", purpose.recommended_property)
    recommended = asset.recommended(purpose)
    if recommended is None:
        problems.append(f"{rec_field}: missing")
    elif set(recommended) != set(allowed):
        extra = sorted(set(recommended) - set(allowed))
        absent = sorted(set(allowed) - set(recommended))
        detail = []
        if extra:
            detail.append(f"not in the allow-list: {', '.join(extra)}")
        if absent:
            detail.append(f"missing from it: {', '.join(absent)}")
        problems.append(f"{rec_field}: differs from {purpose.allow_list_tag} ({'; '.join(detail)})")
    return problems


def check_asset_index(manifest: Manifest, *, root: str | Path | None = None) -> list[str]:
    """Every problem with the `assets:` index; with `root`, also each folder that is missing."""
    problems: list[str] = []
    seen = Counter((a.type, a.name) for a in manifest.assets)
    problems += [
        f"{manifest.path}: assets: {kind} {name!r} is listed {count} times"
        for (kind, name), count in seen.items()
        if count > 1
    ]
    for asset in manifest.assets:
        field = f"{manifest.path}: assets[{asset.index}]"
        if asset.type not in ASSET_TYPES:
            problems.append(f"{field}.type: {asset.type!r} is not one of {list(ASSET_TYPES)}")
        rule = ENDPOINT_NAME if asset.type == "endpoint" else ASSET_NAME
        if not rule.match(asset.name):
            problems.append(f"{field}.name: {asset.name!r} does not match {rule.pattern}")
        if not VERSION.match(asset.version):
            problems.append(f"{field}.version: {asset.version!r} is not a version string")
        relative = PurePosixPath(asset.path)
        if relative.is_absolute() or ".." in relative.parts or "\\" in asset.path:
            problems.append(f"{field}.path: {asset.path!r} must be a relative path inside the repo")
        elif root is not None and not (Path(root) / relative).is_dir():
            problems.append(f"{field}.path: folder {asset.path} does not exist under {root}")
    return problems
