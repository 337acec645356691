"""`deitkit finetune`: flags named after Azure's fine-tuning pipeline inputs (docs/finetune.md)."""

from __future__ import annotations

import json
import logging
import os

import click

from deitkit.errors import ConfigError
from deitkit.tasks import Task
from deitkit.training.config import CLASS_WEIGHTS, OPTIMIZERS, PRECISIONS, SCHEDULERS


class _Switch(click.Option):
    """`--x` / `--no-x`, and `--x true|false` as well: Azure ML passes boolean inputs as values."""

    def __init__(self, decls, **kwargs):
        (flag,) = decls
        kwargs.update(type=click.BOOL, is_flag=False, flag_value=True, metavar="[true|false]")
        super().__init__([flag], **kwargs)
        self.secondary_opts = ["--no-" + flag.removeprefix("--")]

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return record and (f"{self.opts[0]} [true|false] / {self.secondary_opts[0]}", record[1])

    def add_to_parser(self, parser, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        parser.add_option(
            obj=self, opts=self.secondary_opts, dest=self.name, action="store_const", const="false"
        )


def _bool_flag(name: str, default: bool, help: str):
    """A switch: `--x`, `--no-x`, or `--x VALUE` with VALUE true/false (any case, 1/0, yes/no)."""
    return click.option(f"--{name}", cls=_Switch, default=default, show_default=True, help=help)


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


@click.command()
@click.option("--model", required=True, help="Hub id, local checkpoint folder, or scratch:<arch>.")
@click.option(
    "--train", required=True, help="Training data (any layout `deitkit data validate` reads)."
)
@click.option("--validation", default=None, help="Validation data (default: a seeded 80/20 split).")
@click.option(
    "--task",
    type=click.Choice([t.value for t in Task]),
    default=Task.MULTICLASS.value,
    show_default=True,
)
@click.option("--output", required=True, help="Output folder (re-running resumes from it).")
@click.option("--image-size", type=int, default=None, help="Input size; -1 = the checkpoint's own.")
@click.option("--image-width", type=int, default=None, help="Azure's image_width (= height).")
@click.option("--image-height", type=int, default=None, help="Azure's image_height (= width).")
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--train-batch-size", type=int, default=None, help="Default 60 DeiT, 72 ViT/BEiT.")
@click.option("--validation-batch-size", type=int, default=None)
@click.option("--learning-rate", type=float, default=None, help="Default 5e-5.")
@click.option(
    "--lr-scheduler",
    type=click.Choice(list(SCHEDULERS)),
    default="warmup_cosine",
    show_default=True,
)
@click.option("--warmup-steps", type=int, default=0, show_default=True)
@click.option(
    "--optimizer", type=click.Choice(list(OPTIMIZERS)), default="adamw_torch", show_default=True
)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--gradient-accumulation-steps", type=int, default=1, show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True)
@click.option("--label-smoothing", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--max-grad-norm", type=float, default=1.0, show_default=True)
@click.option(
    "--metric-for-best-model",
    default=None,
    help="Default: accuracy (multiclass), iou (multilabel).",
)
@_bool_flag("early-stopping", False, "Stop when the metric stops improving.")
@click.option("--early-stopping-patience", type=int, default=1, show_default=True)
@_bool_flag("augmentations", True, "RandomResizedCrop, flip and colour jitter.")
@_bool_flag("rand-augment", False, "RandAugment (n=2, m=9).")
@click.option("--mixup", type=float, default=0.0, show_default=True, help="Mixup alpha (0 = off).")
@click.option(
    "--cutmix", type=float, default=0.0, show_default=True, help="CutMix alpha (0 = off)."
)
@click.option("--random-erasing", type=float, default=0.0, show_default=True, help="Probability.")
@click.option(
    "--class-weights", type=click.Choice(CLASS_WEIGHTS), default="none", show_default=True
)
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader workers.")
@_bool_flag("apply-deepspeed", False, "DeepSpeed with the shipped ZeRO stage 1 config.")
@click.option("--deepspeed", "deepspeed_config", default=None, help="Your DeepSpeed JSON config.")
@_bool_flag("apply-ort", False, "ORTModule where available, else torch.compile.")
@_bool_flag("resume", True, "Continue from the last complete checkpoint in --output.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--save-steps", type=int, default=None, help="Evaluate and checkpoint every N steps.")
@click.option("--validation-fraction", type=float, default=0.2, show_default=True)
def finetune(**options) -> None:
    """Fine-tune an image classifier with the Hugging Face Trainer."""
    from deitkit.training.config import FinetuneConfig
    from deitkit.training.run import METRICS_FILE
    from deitkit.training.run import finetune as run_finetune

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    width, height = options.pop("image_width"), options.pop("image_height")
    options["image_size"] = _square_size(options["image_size"], width, height)
    result = run_finetune(FinetuneConfig(**options))
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one summary (from rank 0) is enough
    keys = [k for k in result.metrics if k.startswith("eval_") or k.startswith("train_")]
    summary = {k: result.metrics[k] for k in keys if isinstance(result.metrics[k], float)}
    click.echo(json.dumps({**summary, "accelerator": result.metrics["accelerator"]}, indent=2))
    click.echo(f"model: {result.model_dir}\nmetrics: {result.output_dir / METRICS_FILE}")
