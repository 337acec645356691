"""`deitkit -v/--quiet` (cli/verbosity.py): the level of deitkit's loggers, for every command."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from deitkit.cli.main import cli


@pytest.fixture
def deitkit_logger(monkeypatch) -> logging.Logger:
    """deitkit's logger, its level restored after the test."""
    logger = logging.getLogger("deitkit")
    monkeypatch.setattr(logger, "level", logger.level)
    return logger


@pytest.mark.parametrize(
    ("args", "env", "level"),
    [
        ([], {}, logging.INFO),
        (["-v"], {}, logging.DEBUG),
        (["--verbose"], {}, logging.DEBUG),
        (["-q"], {}, logging.WARNING),
        (["--quiet"], {}, logging.WARNING),
        ([], {"DEITKIT_QUIET": "1"}, logging.WARNING),
        ([], {"DEITKIT_VERBOSE": "true"}, logging.DEBUG),
    ],
)
def test_the_level_of_deitkits_loggers(deitkit_logger, args, env, level):
    result = CliRunner().invoke(cli, [*args, "sku", "--help"], env=env)
    assert result.exit_code == 0, result.output
    assert deitkit_logger.level == level
    assert logging.getLogger("deitkit.training.run").getEffectiveLevel() == level


def test_verbose_and_quiet_together_are_refused(deitkit_logger):
    result = CliRunner().invoke(cli, ["-v", "-q", "sku", "--help"])
    assert result.exit_code == 2
    assert "--verbose and --quiet contradict each other" in result.output
