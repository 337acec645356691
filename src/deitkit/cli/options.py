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


class Switch(click.Option):
    """`--x` / `--no-x`, and `--x true|false` as well: Azure ML passes boolean inputs as values."""

    def __init__(self, decls, **kwargs):
        flag, *name = decls
        kwargs.update(type=click.BOOL, is_flag=False, flag_value=True, metavar="[true|false]")
        super().__init__([flag, *name], **kwargs)
        self.secondary_opts = ["--no-" + flag.removeprefix("--")]

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return record and (f"{self.opts[0]} [true|false] / {self.secondary_opts[0]}", record[1])

    def add_to_parser(self, parser, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        parser.add_option(
            obj=self, opts=self.secondary_opts, dest=self.name, action="store_const", const="false"
        )
