"""`deitkit -v/--quiet`: how much of deitkit's logging reaches stderr, for every command."""

from __future__ import annotations

import logging

import click

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Debug messages from deitkit as well (its loggers at DEBUG).",
)
quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Only deitkit's warnings and errors (its loggers at WARNING).",
)


def log_level(*, verbose: bool, quiet: bool) -> int:
    """DEBUG with --verbose, WARNING with --quiet, else INFO.

    Raises:
        click.UsageError: both were given.
    """
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet contradict each other; give one of them")
    return logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO


def configure_logging(level: int) -> None:
    """Log deitkit's messages at `level` and up to stderr; other libraries' from WARNING up.

    The handler is the root logger's (basicConfig; none is added where the host has one), so
    the other libraries keep their own settings and the online server's routing of deitkit's
    logger (serving/score.py) still applies.
    """
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("deitkit").setLevel(level)
