"""Azure VM sizes: the catalog, min-SKU spec arithmetic and nearest sizes; it knows no manifest."""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from deitkit.errors import ConfigError

CATALOG_FILE = "azure_vm_sizes.yaml"
# Missing a GPU (or having one too many) outweighs a doubling of both vCPUs and memory.
GPU_WEIGHT = 4.0


class Purpose(StrEnum):
    """What a compute is for; each purpose has its own allow-list on the model asset."""

    INFERENCE = "inference"
    EVALUATION = "evaluation"
    FINETUNE = "finetune"

    @property
    def allow_list_tag(self) -> str:
        return f"{self.value}_compute_allow_list"

    @property
    def min_spec_property(self) -> str:
        return f"{self.value}-min-sku-spec"

    @property
    def recommended_property(self) -> str:
        return f"{self.value}-recommended-sku"


def parse_purpose(name: str | Purpose) -> Purpose:
    """Return the Purpose for `name`, or raise ConfigError naming the allowed values."""
    try:
        return Purpose(name)
    except ValueError:
        allowed = ", ".join(p.value for p in Purpose)
        raise ConfigError(f"unknown purpose {name!r}; expected one of: {allowed}") from None


@dataclass(frozen=True)
class VmSize:
    """One Azure VM size as its series page lists it (memory and temp disk in GiB)."""

    name: str
    series: str
    vcpus: int
    memory_gib: float
    temp_disk_gib: int
    gpus: int = 0
    gpu_type: str | None = None
    source: str = ""

    @property
    def spec(self) -> str:
        """This size as a min-SKU spec `cpus|gpus|memoryGB|diskGB`."""
        return format_spec(self.vcpus, self.gpus, self.memory_gib, self.temp_disk_gib)

    def describe(self) -> str:
        gpu = f"{self.gpus}x {self.gpu_type}" if self.gpus else "no GPU"
        return (
            f"{self.vcpus} vCPUs, {gpu}, {_number(self.memory_gib)} GiB memory, "
            f"{self.temp_disk_gib} GiB temp disk"
        )


class Catalog:
    """The VM sizes deitkit knows, looked up by name without regard to case."""

    def __init__(self, sizes: Iterable[VmSize], *, source: str = CATALOG_FILE):
        self.source = source
        self._sizes = {size.name.lower(): size for size in sizes}

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[VmSize]:
        return iter(self._sizes.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._sizes

    def get(self, name: str) -> VmSize | None:
        return self._sizes.get(name.lower())

    def lookup(self, name: str) -> VmSize:
        """Return the size called `name`, or raise ConfigError naming close spellings."""
        size = self.get(name)
        if size is None:
            raise ConfigError(f"unknown Azure VM size {name!r}: {self.suggest(name)}")
        return size

    def suggest(self, name: str) -> str:
        """A hint for an unknown name: the closest spellings in the catalog, if any."""
        # Compare without the "Standard_" every name shares, so it cannot carry a match.
        bare = {key.removeprefix("standard_"): size for key, size in self._sizes.items()}
        query = name.lower().removeprefix("standard_")
        close = [bare[c].name for c in difflib.get_close_matches(query, list(bare), n=3)]
        if not close:
            return f"not among the {len(self)} sizes in {self.source}"
        head = ", ".join(close[:-1]) + " or " if len(close) > 1 else ""
        return f"did you mean {head}{close[-1]}?"


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read a catalog file (default: the one deitkit ships); errors name the file and entry."""
    if path is None:
        return _default_catalog()
    path = Path(path)
    try:
        return _parse_catalog(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the VM size catalog: {err}") from None


@functools.cache
def _default_catalog() -> Catalog:
    text = resources.files("deitkit.resources").joinpath(CATALOG_FILE).read_text("utf-8")
    return _parse_catalog(yaml.safe_load(text), CATALOG_FILE)


def _parse_catalog(doc: Any, where: str) -> Catalog:
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list):
        raise ConfigError(f"{where}: expected a mapping with a 'series' list")
    sizes: dict[str, VmSize] = {}
    for i, series in enumerate(doc["series"]):
        field = f"series[{i}]"
        if not isinstance(series, dict) or not isinstance(series.get("sizes"), dict):
            raise ConfigError(f"{where}: {field}: expected a mapping with 'name' and 'sizes'")
        gpu = series.get("gpu") or {}
        for name, row in series["sizes"].items():
            at = f"{where}: {field}.sizes.{name}"
            if not isinstance(row, dict):
                raise ConfigError(f"{at}: expected a mapping")
            if name.lower() in sizes:
                raise ConfigError(f"{at}: listed twice")
            gpus = _field(row, "gpus", at, minimum=0, default=0)
            if gpus and not gpu.get("type"):
                raise ConfigError(f"{where}: {field}.gpu.type: needed for sizes with GPUs")
            sizes[name.lower()] = VmSize(
                name=name,
                series=str(series.get("name", "")),
                vcpus=_field(row, "vcpus", at, minimum=1),
                # 0.5 GiB is the smallest memory any Azure VM size has.
                memory_gib=float(_field(row, "memory_gib", at, minimum=0.5, integer=False)),
                temp_disk_gib=_field(row, "temp_disk_gib", at, minimum=0),
                gpus=gpus,
                gpu_type=gpu.get("type") if gpus else None,
                source=str(series.get("source", "")),
            )
    return Catalog(sizes.values(), source=where)


def _field(row: dict, key: str, where: str, *, minimum: float, integer: bool = True, default=None):
    value = row.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        value = None
    if value is None or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key}: expected {kind} >= {minimum}, got {row.get(key)!r}")
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def format_spec(cpus: int, gpus: int, memory_gb: float, disk_gb: float) -> str:
    """`cpus|gpus|memoryGB|diskGB`, the format of Azure ML's `*-min-sku-spec` properties."""
    return "|".join(_number(v) for v in (cpus, gpus, memory_gb, disk_gb))


def parse_spec(text: str) -> tuple[float, float, float, float]:
    """The four numbers of a min-SKU spec; ValueError says what is wrong."""
    parts = str(text).split("|")
    if len(parts) != 4:
        raise ValueError(f"expected cpus|gpus|memoryGB|diskGB, got {text!r}")
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected four numbers cpus|gpus|memoryGB|diskGB, got {text!r}") from None
    if any(n < 0 or not math.isfinite(n) for n in numbers):
        raise ValueError(f"expected non-negative numbers, got {text!r}")
    return numbers  # type: ignore[return-value]


def min_spec(skus: Iterable[str], *, catalog: Catalog | None = None) -> str:
    """The per-field minimum over `skus`: the smallest machine every one of them satisfies.

    Raises:
        ConfigError: `skus` is empty or names a size the catalog does not hold.
    """
    catalog = catalog or load_catalog()
    sizes = [catalog.lookup(sku) for sku in skus]
    if not sizes:
        raise ConfigError("cannot compute a min-SKU spec over an empty list of VM sizes")
    return format_spec(
        min(s.vcpus for s in sizes),
        min(s.gpus for s in sizes),
        min(s.memory_gib for s in sizes),
        min(s.temp_disk_gib for s in sizes),
    )


def size_distance(a: VmSize, b: VmSize) -> float:
    """How far apart two sizes are: |log2| ratios of vCPUs, memory and 1+GPUs (GPUs weighted 4).

    Ratios, not differences, because sizes grow geometrically (4→8 vCPUs is as big a step
    as 48→96); the GPU weight keeps a CPU size's nearest alternatives on CPUs and vice versa.
    """
    return (
        abs(math.log2(a.vcpus / b.vcpus))
        + abs(math.log2(a.memory_gib / b.memory_gib))
        + GPU_WEIGHT * abs(math.log2((1 + a.gpus) / (1 + b.gpus)))
    )


def closest_sizes(target: VmSize, candidates: Iterable[VmSize], *, n: int = 3) -> list[VmSize]:
    """The `n` candidates nearest to `target` by `size_distance`, smaller sizes first on ties."""
    ranked = sorted(
        candidates,
        key=lambda c: (size_distance(target, c), c.vcpus, c.memory_gib, c.name),
    )
    return ranked[:n]
