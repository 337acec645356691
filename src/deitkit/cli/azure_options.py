"""What every `deitkit azure` command shares: workspace options, the client, the SKU gate."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from deitkit.assets.manifest import DEFAULT_MODEL, Manifest
from deitkit.assets.sku_gate import SkuCheck, check_sku
from deitkit.azure import workspace as ws
from deitkit.errors import ConfigError
from deitkit.skus import Purpose


def workspace_options(
    *, assets: bool = True, sku: bool | None = None, dry_run: bool = True
) -> Callable:
    """The workspace options; with `assets` --manifest, and --sku-model unless `sku` is False.

    With `dry_run`, --dry-run.
    """
    sku = assets if sku is None else sku

    def decorate(command: Callable) -> Callable:
        options = [
            click.option("--subscription", default=None, help="Azure subscription id."),
            click.option("--resource-group", default=None, help="Resource group of the workspace."),
            click.option("--workspace", default=None, help="Azure ML workspace name."),
            click.option(
                "--config",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default=None,
                help="Workspace config.json (default: found like MLClient.from_config).",
            ),
        ]
        if assets:
            options.append(
                click.option(
                    "--manifest",
                    type=click.Path(exists=True, dir_okay=False, path_type=Path),
                    default=None,
                    help="Asset manifest (default: the repository's assets.yaml).",
                )
            )
        if sku:
            options.append(
                click.option(
                    "--sku-model",
                    default=DEFAULT_MODEL,
                    show_default=True,
                    help="Model asset whose SKU allow-list gates --instance-type.",
                )
            )
        if dry_run:
            options.append(
                click.option(
                    "--dry-run", is_flag=True, help="Print the entities as YAML; call nothing."
                )
            )
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def client_for(kw: dict[str, Any]) -> Any:
    """The MLClient for the workspace the flags or config.json name (first network use later)."""
    workspace = ws.resolve_workspace(
        subscription=kw["subscription"],
        resource_group=kw["resource_group"],
        workspace=kw["workspace"],
        config=kw["config"],
    )
    return ws.connect(workspace)


def sku_gate(size: str, purpose: Purpose, *, model: str, manifest: Manifest) -> SkuCheck:
    """The SKU gate: the passed check (`.size` is the catalog's entry), or SkuNotAllowedError."""
    check = check_sku(size, purpose, model=model, manifest=manifest)
    check.raise_if_denied()
    return check


def parse_pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {value!r}: expected NAME=VALUE")
        pairs[key] = rest
    return pairs


def echo_lines(func: Callable) -> Callable:
    """Echo the lines the command returns: YAML documents (dry run) or what was done."""

    @functools.wraps(func)
    def wrapper(**kw: Any) -> None:
        for line in func(**kw) or ():
            click.echo(line.rstrip("\n"))

    return wrapper
