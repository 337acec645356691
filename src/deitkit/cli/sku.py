"""`deitkit sku check`: is a VM size on the model's allow-list, and if not, what is closest."""

from __future__ import annotations

from pathlib import Path

import click

from deitkit.assets.manifest import DEFAULT_MODEL
from deitkit.skus import Purpose

EXIT_NOT_ALLOWED = 1


@click.group()
def sku() -> None:
    """Check Azure VM sizes against the model assets' SKU allow-lists."""


@sku.command("check")
@click.argument("vm_size", metavar="SKU")
@click.option(
    "--for",
    "purpose",
    required=True,
    type=click.Choice([p.value for p in Purpose]),
    help="What the compute will run.",
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model asset name.")
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Asset manifest (default: the repository's assets.yaml).",
)
def check(vm_size: str, purpose: str, model: str, manifest: Path | None) -> None:
    """Exit 0 when SKU is allowed for the purpose; exit 1 naming the closest allowed sizes."""
    from deitkit.assets.manifest import load_manifest
    from deitkit.assets.sku_gate import check_sku

    result = check_sku(vm_size, purpose, model=model, manifest=load_manifest(manifest))
    if result.allowed:
        click.echo(result.summary())
        return
    click.echo(result.summary(), err=True)
    raise SystemExit(EXIT_NOT_ALLOWED)
