"""The `deitkit` command group; user errors print one line and exit 2, never a traceback.

User errors are DeitkitErrors, and OS errors on a command's outputs (a read-only or full
folder, an output path under a file), which `cli.output_errors` turns into OutputErrors.
"""

from __future__ import annotations

import sys

import click

from deitkit import __version__
from deitkit.cli.assets import assets
from deitkit.cli.azure import azure
from deitkit.cli.azure_local import run_local, run_local_batch
from deitkit.cli.batch_score import batch_score
from deitkit.cli.data import data
from deitkit.cli.evaluate import evaluate
from deitkit.cli.finetune import finetune
from deitkit.cli.output_errors import use_everywhere
from deitkit.cli.package import package
from deitkit.cli.predict import predict
from deitkit.cli.process import skip_final_collection
from deitkit.cli.quickstart import quickstart
from deitkit.cli.request import request
from deitkit.cli.serve import serve
from deitkit.cli.sku import sku
from deitkit.cli.verbosity import configure_logging, log_level, quiet_option, verbose_option
from deitkit.errors import DeitkitError
from deitkit.progress import plain_logs

EXIT_USER_ERROR = 2
# Every option reads DEITKIT_<COMMAND>_<OPTION> (subcommands chained: DEITKIT_AZURE_FINETUNE_
# WORKSPACE) where it is not given; the command line wins, then the environment, then a
# `finetune --config` file, then the default.
ENV_PREFIX = "DEITKIT"
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": ENV_PREFIX}


class _Group(click.Group):
    """Turns DeitkitError into `error: ...` on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DeitkitError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="deitkit")
@verbose_option
@quiet_option
def cli(verbose: bool, quiet: bool) -> None:
    """Fine-tune, check and deploy DeiT-family image classifiers — locally first, then Azure ML.

    Every option can also be set from the environment: DEITKIT_<COMMAND>_<OPTION>, e.g.
    DEITKIT_FINETUNE_MODEL, DEITKIT_AZURE_FINETUNE_WORKSPACE, DEITKIT_VERBOSE=1 (docs/cli.md).
    """
    configure_logging(log_level(verbose=verbose, quiet=quiet))
    plain_logs()  # outside a terminal, no carriage-return bars from the Hugging Face libraries


cli.add_command(assets)
cli.add_command(azure)
# `deitkit azure run-local` and `run-local-batch` live in their own module.
azure.add_command(run_local)
azure.add_command(run_local_batch)
cli.add_command(batch_score)
cli.add_command(data)
cli.add_command(evaluate)
cli.add_command(finetune)
cli.add_command(package)
cli.add_command(predict)
cli.add_command(quickstart)
cli.add_command(request)
cli.add_command(serve)
cli.add_command(sku)
use_everywhere(cli)  # after every command is added: each one's outputs are guarded


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="deitkit")
    finally:
        skip_final_collection()  # the process ends here


if __name__ == "__main__":
    main()
