"""`deitkit azure run-local` and `run-local-batch`: Azure ML jobs run on this machine first.

Both commands join the `azure` group (registered in cli/main.py); neither needs a workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from deitkit.cli.azure_options import parse_pairs

_WORK_DIR_HELP = "Where each run's folder is made (default: ./azureml-local-runs)."


def _echo(line: str) -> None:
    click.echo(line, err=True)


@click.command("run-local")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="An input of the component (repeatable); data inputs take a local path or an "
    "azureml://datastores/<ds>/paths/<p> URL.",
)
@click.option(
    "--datastore",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Local folder standing in for the workspace's datastores: DIR/<ds>/<path>.",
)
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), help=_WORK_DIR_HELP)
@click.option(
    "--tracking-uri", default=None, help="MLflow store of the jobs' runs (default: SQLite in it)."
)
@click.option("--experiment", default=None, help="MLflow experiment (default: deitkit-local).")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Set in every job.")
@click.option("--timeout", type=float, default=None, help="Seconds a job may run.")
def run_local(**kw: Any) -> None:
    """Run a command or pipeline component SPEC locally, as Azure ML runs it."""
    from deitkit.azure.local import run_local as run
    from deitkit.azure.local.tracking import DEFAULT_EXPERIMENT

    result = run(
        kw["spec"],
        parse_pairs(kw["settings"], "--set"),
        datastore=kw["datastore"],
        work_dir=kw["work_dir"],
        tracking_uri=kw["tracking_uri"],
        experiment=kw["experiment"] or DEFAULT_EXPERIMENT,
        environment_variables=parse_pairs(kw["env"], "--env"),
        timeout_s=kw["timeout"],
        echo=_echo,
    )
    click.echo(f"run: {result.run_id} completed ({result.folder})")
    for name, path in result.outputs.items():
        click.echo(f"  {name}  {path}")


@click.command("run-local-batch")
@click.argument("deployment", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The model folder the deployment serves (a packaged MLflow model).",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A folder of files (uri_folder) or one file, e.g. a CSV of base64 images (uri_file).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New or empty output folder; the deployment's output_file_name is written there.",
)
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), help=_WORK_DIR_HELP)
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Set for the scorer.")
@click.option("--timeout", type=float, default=None, help="Seconds the job may run.")
def run_local_batch(**kw: Any) -> None:
    """Run batch DEPLOYMENT's scoring script over --input as Azure ML's batch runtime does."""
    from deitkit.azure.local import run_local_batch as run

    result = run(
        kw["deployment"],
        model=kw["model"],
        input=kw["input_path"],
        output=kw["output"],
        work_dir=kw["work_dir"],
        environment_variables=parse_pairs(kw["env"], "--env"),
        timeout_s=kw["timeout"],
        echo=_echo,
    )
    summary = result.summary
    click.echo(
        f"batch: {result.run_id} completed: {summary.get('succeeded', 0)} files succeeded, "
        f"{summary.get('failed', 0)} failed ({result.folder})"
    )
    if result.output_file is not None:
        click.echo(f"  output  {result.output_file}")
