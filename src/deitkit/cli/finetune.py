"""`deitkit finetune`: flags named after Azure's fine-tuning pipeline inputs (docs/finetune.md).

The options are built from `FinetuneConfig`'s fields, so each default, help text and choice is
stated once, on the field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from enum import Enum
from typing import Any

import click

from deitkit.cli.options import Switch
from deitkit.errors import ConfigError
from deitkit.precision import ALIASES
from deitkit.training.config import PRECISIONS, FinetuneConfig

# Azure's precision input passes "32" or "16" (its enum); the flag takes those as well.
_AZURE_PRECISIONS = ("32", "16")


class _PrecisionChoice(click.Choice):
    """`--precision`: training's names plus Azure's "32"/"16", mapped onto fp32/fp16 here."""

    def __init__(self) -> None:
        super().__init__([*PRECISIONS, *_AZURE_PRECISIONS])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        chosen = super().convert(value, param, ctx)
        return ALIASES.get(chosen, chosen)


# Fields whose flag takes other spellings than the field holds, mapped at this edge.
_EDGE_TYPES: dict[str, click.ParamType] = {"precision": _PrecisionChoice()}
# Fields that are local paths (strings in FinetuneConfig, `--help` shows PATH). Not --model or
# --teacher: a hub id or scratch:<arch> as well.
_PATH_FIELDS = {
    "train": click.Path(),
    "validation": click.Path(),
    "output": click.Path(file_okay=False),
    "deepspeed_config": click.Path(dir_okay=False),
}

# Azure's names for --image-size; `_square_size` folds them into FinetuneConfig.image_size.
_AZURE_SIZE_OPTIONS = [
    click.Option(["--image-width"], type=int, default=None, help="Azure's image_width (= height)."),
    click.Option(
        ["--image-height"], type=int, default=None, help="Azure's image_height (= width)."
    ),
]


def _config_option(field: dataclasses.Field, hint: Any) -> click.Option:
    """The option of one FinetuneConfig field, from its type and metadata (`config._option`)."""
    meta = field.metadata
    decls = [meta["flag"] or "--" + field.name.replace("_", "-"), field.name]
    if field.default is dataclasses.MISSING:
        # No default at all: click counts even an explicit None default as given.
        settings = {"required": True}
    else:
        default = field.default
        settings = {"default": default.value if isinstance(default, Enum) else default}
    kind = _without_none(hint)
    show_default = meta["show_default"] or True
    if kind is bool:
        return Switch(decls, show_default=show_default, help=meta["help"], **settings)
    if field.name in _EDGE_TYPES:
        kind = _EDGE_TYPES[field.name]
    elif field.name in _PATH_FIELDS:
        kind = _PATH_FIELDS[field.name]
    elif meta["choices"]:
        kind = click.Choice(meta["choices"])
    return click.Option(decls, type=kind, show_default=show_default, help=meta["help"], **settings)


def _without_none(hint: Any) -> Any:
    """`int` for `int | None`; other hints unchanged."""
    if isinstance(hint, types.UnionType):
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


# What to do with OUT rather than how to train: no FinetuneConfig field, no component input
# (each Azure ML job writes a new output folder).
_OVERWRITE_OPTION = click.Option(
    ["--overwrite"],
    is_flag=True,
    default=False,
    help="Start over: remove what a previous run left in --output (a finished run too) once "
    "every check has passed. Without it a finished --output is refused and an unfinished one "
    "resumes.",
)


def _read_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--config: the file's fields become the defaults, which flags and DEITKIT_FINETUNE_*
    variables override (click's default_map)."""
    if value is not None:
        from deitkit.training.config_file import read_config_file

        ctx.default_map = {**(ctx.default_map or {}), **read_config_file(value)}
    return value


# Read before every other option (eager), so its values can be their defaults.
_CONFIG_OPTION = click.Option(
    ["--config"],
    type=click.Path(exists=True, dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_read_config,
    help="YAML or JSON file of these options by name (learning_rate or learning-rate), such "
    "as the finetune_config.json a run writes; flags given as well override it.",
)


def _options() -> list[click.Option]:
    """--config; each FinetuneConfig field's option (Azure's width and height after size);
    --overwrite."""
    hints = typing.get_type_hints(FinetuneConfig)
    options = [_CONFIG_OPTION]
    for field in dataclasses.fields(FinetuneConfig):
        options.append(_config_option(field, hints[field.name]))
        if field.name == "image_size":
            options += _AZURE_SIZE_OPTIONS
    return [*options, _OVERWRITE_OPTION]


def _square_size(image_size: int | None, width: int | None, height: int | None) -> int | None:
    """One square input size from `--image-size` and Azure's `--image-width`/`--image-height`.

    As in Azure ML, -1 for either side means the checkpoint's own size for both.
    """
    sides = [v for v in (width, height) if v is not None]
    if not sides:
        return image_size
    if -1 in sides:
        size = -1
    elif len(set(sides)) > 1:
        raise ConfigError(
            f"--image-width {width} and --image-height {height} differ; deitkit trains square "
            "inputs, so give them the same value (or -1 for the checkpoint's own size)"
        )
    else:
        size = sides[0]
    if image_size is not None and image_size != size:
        raise ConfigError(
            f"--image-size {image_size} disagrees with --image-width/--image-height ({size})"
        )
    return size


@click.command(params=_options())
def finetune(**options) -> None:
    """Fine-tune an image classifier with the Hugging Face Trainer."""
    from deitkit.training.run import METRICS_FILE
    from deitkit.training.run import finetune as run_finetune

    width, height = options.pop("image_width"), options.pop("image_height")
    overwrite = options.pop("overwrite")
    options["image_size"] = _square_size(options["image_size"], width, height)
    result = run_finetune(FinetuneConfig(**options), overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one summary (from rank 0) is enough
    keys = [k for k in result.metrics if k.startswith("eval_") or k.startswith("train_")]
    summary = {k: result.metrics[k] for k in keys if isinstance(result.metrics[k], float)}
    click.echo(json.dumps({**summary, "accelerator": result.metrics["accelerator"]}, indent=2))
    click.echo(f"model: {result.model_dir}\nmetrics: {result.output_dir / METRICS_FILE}")
