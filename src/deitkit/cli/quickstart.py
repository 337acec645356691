"""`deitkit quickstart`: the main job end to end on the embedded defaults, with a timed summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from deitkit.tasks import Task

# What to run next, once the local job works: real data, a real model, then Azure.
GO_FURTHER = """\
go further:
  real data     deitkit data import fridgeObjects.zip --out data   (Azure's sample: {fridge})
  a hub model   deitkit finetune --model facebook/deit-base-patch16-224 \\
                  --train data/training-mltable-folder \\
                  --validation data/validation-mltable-folder --task {task} --output run
  serve it      deitkit serve --model run/mlflow_model --port 5001
  the samples   samples/*.ipynb and samples/*.sh (TARGET=local, or TARGET=azure with a workspace)
  on Azure      deitkit sku check Standard_NC4as_T4_v3 --for finetune; deitkit azure finetune ... \\
                  --dry-run  (docs/azure.md)"""
FRIDGE_URL = (
    "https://automlsamplenotebookdata-adcuc7f7bqhhh8a4.b02.azurefd.net/image-classification/"
    "fridgeObjects.zip"
)


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("quickstart-output"),
    show_default=True,
    help="Where every output goes (recreated on each run).",
)
@click.option(
    "--task",
    type=click.Choice([t.value for t in Task]),
    default=Task.MULTICLASS.value,
    show_default=True,
    help="The digits (one per image) or composed digits (several per image, multilabel).",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Override the preset's epochs."
)
@click.option(
    "--sample-size",
    type=click.IntRange(min=1),
    default=None,
    help="Use only N sample images, 100 or more (default: all 1,797 digits; 4,000 composed "
    "multilabel images). With --epochs 1, a quick try of every stage.",
)
def quickstart(out_dir: Path, task: str, epochs: int | None, sample_size: int | None) -> None:
    """Sample data → validate → fine-tune → evaluate → package → online and batch endpoints.

    Everything runs on this machine: the digits scikit-learn ships, a small DeiT-shaped model
    trained from scratch, a local MLflow store, and the online endpoint on
    azureml-inference-server-http (the server Azure ML runs) on a free loopback port.
    """
    from deitkit.quickstart import Quickstart

    result = Quickstart(
        Task(task), out_dir, epochs=epochs, sample_size=sample_size, say=click.echo
    ).run()
    _summary(result)


def _summary(result) -> None:
    facts, task = result.facts, result.task
    metric, value = facts["validation_metric"]
    click.echo("\n== quickstart summary ==")
    click.echo(f"task        {task} ({facts['images']} images, {facts['labels']} labels)")
    click.echo(
        f"model       {facts['model']}, {facts['epochs']} epochs, precision {facts['precision']}"
    )
    click.echo(f"validation  {metric} {value:.4f}")
    click.echo(
        "evaluation  "
        + ", ".join(f"{name} {_number(v)}" for name, v in facts["evaluation"].items())
        + f"  (packaged model in {facts['served_precision']}, as the endpoints serve it)"
    )
    online = facts["online"]
    click.echo(
        f"online      POST /score with {len(online['images'])} images "
        f"({', '.join(online['images'])}) answered in {online['latency_ms']:.0f} ms:"
    )
    for item in online["answer"]:
        click.echo("  " + json.dumps(_rounded(item)))
    batch = facts["batch"]
    click.echo(f"batch       {batch['rows']} rows, {batch['errors']} with an error")
    click.echo("time per stage:")
    for stage, seconds in result.timings.items():
        click.echo(f"  {stage:<20} {seconds:7.1f} s")
    click.echo(f"  {'total':<20} {sum(result.timings.values()):7.1f} s")
    click.echo("outputs:")
    for name, path in result.paths.items():
        click.echo(f"  {name:<27} {path}")
    click.echo(GO_FURTHER.format(fridge=FRIDGE_URL, task=task))


def _rounded(item: dict) -> dict:
    return {"probs": [round(p, 4) for p in item["probs"]], "labels": item["labels"]}


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"
