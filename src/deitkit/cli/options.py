"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path

import click

model_option = click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Packaged model folder (deitkit package, or Azure's catalog MLflow model) or "
    "checkpoint folder.",
)
