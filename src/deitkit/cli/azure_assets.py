"""`deitkit azure data` and `deitkit azure environments`: what a fresh workspace lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from deitkit.assets.manifest import load_manifest
from deitkit.azure import data as azure_data
from deitkit.azure import entities
from deitkit.azure import environments as envs
from deitkit.cli.azure_options import client_for, echo_lines, workspace_options


@click.group("data")
def data() -> None:
    """Datasets Azure ML can read: images as a uri_folder, MLTables of azureml:// URLs."""


@data.command("upload")
@click.argument(
    "data_dir", metavar="DATA", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--name",
    required=True,
    help="Data asset names: NAME-images (uri_folder), NAME-training and NAME-validation (mltable).",
)
@click.option("--version", default=None, help="Version of all three (default: the next of each).")
@workspace_options(assets=False)
@echo_lines
def upload(**kw: Any):
    """Register a folder `deitkit data import` wrote, as Azure's fridgeObjects samples do.

    The image folder uploads as NAME-images; new MLTable folders (staged in deitkit's cache,
    yours stay as they are) whose image_url is NAME-images' azureml:// path plus the image's
    path in it register as NAME-training and NAME-validation. Prints the references to pass
    to `deitkit azure finetune --training-data ... --validation-data ...`.
    """
    imported = azure_data.read_imported(kw["data_dir"])
    plan = azure_data.plan_upload(imported, kw["name"], version=kw["version"])
    if kw["dry_run"]:
        return [entities.to_yaml([plan.images, *plan.mltables.values()])]
    done = azure_data.upload(client_for(kw), plan)
    return [
        f"images: {done.images} at {done.images_url}",
        f"staged MLTable folders: {done.staging}",
        f"training_data: {done.mltables['training']}",
        f"validation_data: {done.mltables['validation']}",
    ]


@data.command("stage")
@click.argument(
    "data_dir", metavar="DATA", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--images-url",
    required=True,
    help="The azureml:// path of the uploaded image folder (`az ml data create ... --query path`).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the training and validation MLTable folders into.",
)
@echo_lines
def stage(data_dir: Path, images_url: str, out_dir: Path):
    """Write DATA's MLTable folders into --out with image_url under --images-url; no Azure call.

    The Azure CLI route's middle step: `az ml data create --type uri_folder` uploads the
    images, this writes the MLTables, `az ml data create --type mltable` registers them.
    """
    imported = azure_data.read_imported(data_dir)
    folders = azure_data.stage(imported, images_url, out_dir)
    return [f"{side}_data: {folder}" for side, folder in folders.items()]


@click.group("environments")
def environments() -> None:
    """The repository's environments (environments/*), versioned by a hash of what they build."""


@environments.command("register")
@click.option(
    "--name", "names", multiple=True, help="Only this environment (repeatable; default: all)."
)
@workspace_options(sku=False)
@echo_lines
def register(**kw: Any):
    """Register each environment version the workspace lacks; a second run registers nothing.

    The submit commands (finetune, deploy-online, deploy-batch) do this themselves for the
    environments they use; this is for registering ahead of time.
    """
    plans = _plans(kw["manifest"], kw["names"])
    if kw["dry_run"]:
        return [entities.to_yaml([plan.entity for plan in plans])]
    created = {plan.name for plan in envs.register_missing(client_for(kw), plans)}
    return [
        f"{plan.reference}: {'registered' if plan.name in created else 'already registered'}"
        for plan in plans
    ]


@environments.command("stage")
@click.option(
    "--name", "names", multiple=True, help="Only this environment (repeatable; default: all)."
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Asset manifest (default: the repository's assets.yaml).",
)
@echo_lines
def stage_environments(names: tuple[str, ...], manifest: Path | None):
    """Print NAME, VERSION, staged build context and spec.yaml per environment (tab-separated).

    For the Azure CLI route: `az ml environment create --file SPEC --set version=VERSION
    build.path=CONTEXT`. No Azure call.
    """
    return [
        "\t".join((plan.name, plan.version, str(plan.context), str(plan.spec)))
        for plan in _plans(manifest, names)
    ]


def _plans(manifest: Path | None, names: tuple[str, ...]) -> list[envs.BuildPlan]:
    from deitkit.errors import ConfigError

    loaded = load_manifest(manifest)
    known = envs.repository_environments(loaded)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"--name {unknown[0]!r}: not an environment of {loaded.path}; "
            f"known: {', '.join(sorted(known)) or 'none'}"
        )
    return envs.plan_environments(set(names) or set(known), loaded)
