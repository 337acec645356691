"""`deitkit assets validate`: check the Azure ML assets before anything is uploaded."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def assets() -> None:
    """Check the component, environment, endpoint and model assets."""


@assets.command("validate")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Repository root holding assets.yaml (default: this checkout).",
)
def validate(root: Path | None) -> None:
    """Load every asset YAML with azure-ai-ml and check Azure's asset rules; exit 1 on problems.

    Checks the asset anatomy (asset.yaml, spec, description.md, names and versions as
    assets.yaml indexes them, files under 1 MB, no extra-index-url), the model assets' SKU
    invariants, the VM sizes of deployments and pipeline steps against the allow-lists,
    environment build contexts and pins, pipeline bindings, and that every flag a component
    passes exists in this `deitkit`, with the component's default equal to the flag's own.
    """
    from deitkit.assets.validate import validate_assets

    # The root group this command runs under: its commands are what the components call.
    root_group = click.get_current_context().find_root().command
    report = validate_assets(root, cli=root_group)
    for problem in report.problems:
        click.echo(problem)
    click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)
