"""Numeric settings from the environment: unset, valid, and refused in one line."""

from __future__ import annotations

import pytest

from deitkit.env_numbers import env_number, env_numbers
from deitkit.errors import ConfigError


def test_unset_and_blank_variables_give_none(monkeypatch):
    monkeypatch.delenv("DEITKIT_TEST_N", raising=False)
    assert env_number("DEITKIT_TEST_N") is None
    monkeypatch.setenv("DEITKIT_TEST_N", "  ")
    assert env_number("DEITKIT_TEST_N") is None


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [("integer", " 12 ", 12), ("number", "2.5", 2.5), ("seconds", "0.25", 0.25)],
)
def test_each_kind_reads_its_values(monkeypatch, kind, raw, value):
    monkeypatch.setenv("DEITKIT_TEST_N", raw)
    assert env_number("DEITKIT_TEST_N", kind) == value
    assert type(env_number("DEITKIT_TEST_N", kind)) is type(value)


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("integer", "0", "an integer >= 1"),
        ("integer", "1.5", "an integer >= 1"),
        ("integer", "ten", "an integer >= 1"),
        ("number", "0.5", "a number >= 1"),
        ("number", "inf", "a number >= 1"),
        ("seconds", "0", "a number of seconds > 0"),
        ("seconds", "nan", "a number of seconds > 0"),
    ],
)
def test_invalid_values_name_the_variable_and_what_is_expected(monkeypatch, kind, raw, expected):
    monkeypatch.setenv("DEITKIT_TEST_N", raw)
    with pytest.raises(ConfigError) as err:
        env_number("DEITKIT_TEST_N", kind)
    assert str(err.value) == f"DEITKIT_TEST_N={raw!r} is invalid: expected {expected}"


def test_env_numbers_keeps_only_the_variables_that_are_set(monkeypatch):
    monkeypatch.setenv("DEITKIT_TEST_A", "3")
    monkeypatch.delenv("DEITKIT_TEST_B", raising=False)
    monkeypatch.setenv("DEITKIT_TEST_C", "1.5")
    names = {"a": "DEITKIT_TEST_A", "b": "DEITKIT_TEST_B", "c": "DEITKIT_TEST_C"}
    assert env_numbers(names, {"c": "seconds"}) == {"a": 3, "c": 1.5}
