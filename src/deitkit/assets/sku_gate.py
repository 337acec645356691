"""The SKU gate: may a VM size run a purpose for a model asset, by the manifest's allow-lists."""

from __future__ import annotations

from dataclasses import dataclass

from deitkit.assets.manifest import DEFAULT_MODEL, Manifest
from deitkit.errors import ConfigError
from deitkit.skus import (
    Catalog,
    Purpose,
    VmSize,
    closest_sizes,
    load_catalog,
    min_spec,
    parse_purpose,
)


class SkuNotAllowedError(ConfigError):
    """A VM size is not on the model's allow-list for a purpose; `check` has the alternatives."""

    def __init__(self, check: SkuCheck):
        self.check = check
        super().__init__(check.summary())


@dataclass(frozen=True)
class SkuCheck:
    """The answer to "may `size` run `purpose` for `model`?", with the nearest allowed sizes."""

    size: VmSize
    purpose: Purpose
    model: str
    allowed: bool
    min_spec: str
    alternatives: tuple[VmSize, ...] = ()

    def summary(self) -> str:
        what = f"{self.purpose.value} of {self.model}"
        if self.allowed:
            return f"{self.size.name} is allowed for {what} ({self.size.describe()})"
        lines = [
            f"{self.size.name} ({self.size.describe()}) is not allowed for {what} "
            f"(min spec cpus|gpus|memoryGB|diskGB = {self.min_spec})",
            "closest allowed sizes:",
        ]
        lines += [f"  {alt.name} ({alt.describe()})" for alt in self.alternatives]
        return "\n".join(lines)

    def raise_if_denied(self) -> None:
        """The gate before any Azure call: raise SkuNotAllowedError unless allowed."""
        if not self.allowed:
            raise SkuNotAllowedError(self)


def check_sku(
    sku: str,
    purpose: str | Purpose,
    *,
    manifest: Manifest,
    model: str = DEFAULT_MODEL,
    catalog: Catalog | None = None,
    alternatives: int = 3,
) -> SkuCheck:
    """Check `sku` against `model`'s allow-list for `purpose` in the asset manifest.

    Args:
        sku: An Azure VM size name (case is ignored).
        purpose: inference, evaluation or finetune.
        manifest: The loaded manifest (`load_manifest()` reads the repository's assets.yaml);
            required, so that which allow-lists gate a call is always the caller's choice.
        model: The model asset's name in the manifest.
        catalog: The VM size catalog; default: the one deitkit ships.
        alternatives: How many nearest allowed sizes to name when `sku` is not allowed.

    Raises:
        ConfigError: `sku` is unknown (the message names close spellings), or the model or
            its allow-list is missing from the manifest.
    """
    purpose = parse_purpose(purpose)
    catalog = catalog or load_catalog()
    size = catalog.lookup(sku)
    asset = manifest.model(model)
    names = asset.allow_list(purpose)
    unknown = [name for name in names if name not in catalog]
    if unknown:
        raise ConfigError(
            f"{asset.field('tags', purpose.allow_list_tag)}: {unknown[0]!r} is not in the VM size "
            f"catalog {catalog.source} ({catalog.suggest(unknown[0])})"
        )
    allowed = [catalog.lookup(name) for name in names]
    spec = min_spec([s.name for s in allowed], catalog=catalog)
    if size in allowed:
        return SkuCheck(size, purpose, asset.name, True, spec)
    nearest = closest_sizes(size, allowed, n=alternatives)
    return SkuCheck(size, purpose, asset.name, False, spec, tuple(nearest))
