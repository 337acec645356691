"""Serving limits: defaults, environment overrides, and invalid values named."""

from __future__ import annotations

import pytest

from deitkit.errors import ConfigError
from deitkit.serving.limits import (
    ALLOW_URLS_ENV,
    ENV_NAMES,
    MIB,
    ServingLimits,
    serving_limits_from_env,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in [*ENV_NAMES.values(), ALLOW_URLS_ENV]:
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_documented_caps():
    limits = serving_limits_from_env()
    assert limits == ServingLimits()
    assert (limits.max_body_bytes, limits.max_images) == (32 * MIB, 64)
    assert (limits.url_max_bytes, limits.url_timeout) == (20 * MIB, 10.0)
    assert limits.max_request_pixels == 512_000_000  # 8 images at the 64 M per-image cap


def test_environment_variables_override_each_cap(monkeypatch):
    monkeypatch.setenv("DEITKIT_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("DEITKIT_MAX_IMAGES", " 3 ")
    monkeypatch.setenv("DEITKIT_URL_MAX_BYTES", "2048")
    monkeypatch.setenv("DEITKIT_URL_TIMEOUT", "2.5")
    monkeypatch.setenv("DEITKIT_MAX_REQUEST_PIXELS", "1000000")
    assert serving_limits_from_env() == ServingLimits(1000, 3, 2048, 2.5, 1_000_000)
    monkeypatch.setenv("DEITKIT_MAX_IMAGES", "")  # empty keeps the default
    assert serving_limits_from_env().max_images == 64


@pytest.mark.parametrize(
    "name, value",
    [
        ("DEITKIT_MAX_BODY_BYTES", "32MB"),
        ("DEITKIT_MAX_IMAGES", "0"),
        ("DEITKIT_MAX_IMAGES", "2.5"),
        ("DEITKIT_URL_MAX_BYTES", "-1"),
        ("DEITKIT_URL_TIMEOUT", "0"),
        ("DEITKIT_URL_TIMEOUT", "nan"),
        ("DEITKIT_URL_TIMEOUT", "soon"),
        ("DEITKIT_MAX_REQUEST_PIXELS", "512M"),
        ("DEITKIT_MAX_REQUEST_PIXELS", "0"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name}={value!r} is invalid"):
        serving_limits_from_env()


def test_limits_check_their_own_fields():
    with pytest.raises(ConfigError, match="max_images must be an integer >= 1"):
        ServingLimits(max_images=0)
    with pytest.raises(ConfigError, match=r"max_request_pixels must be an integer >= 1, got 1\.5"):
        ServingLimits(max_request_pixels=1.5)
    with pytest.raises(ConfigError, match="url_timeout must be seconds > 0"):
        ServingLimits(url_timeout=float("inf"))


def test_url_inputs_are_on_unless_the_operator_turns_them_off(monkeypatch):
    assert serving_limits_from_env().allow_urls is True
    for value, expected in [("false", False), (" NO ", False), ("0", False), ("False", False),
                            ("true", True), ("1", True), ("Yes", True), ("", True)]:  # fmt: skip
        monkeypatch.setenv("DEITKIT_ALLOW_URLS", value)
        assert serving_limits_from_env().allow_urls is expected, value


@pytest.mark.parametrize("value", ["off", "maybe", "2", "f"])
def test_an_unknown_url_switch_names_the_variable_and_the_words_allowed(monkeypatch, value):
    monkeypatch.setenv("DEITKIT_ALLOW_URLS", value)
    with pytest.raises(ConfigError) as caught:
        serving_limits_from_env()
    assert str(caught.value) == (
        f"DEITKIT_ALLOW_URLS={value!r} is invalid: expected true or false (or 1/0, yes/no)"
    )


def test_allow_urls_must_be_a_bool():
    with pytest.raises(ConfigError, match="allow_urls must be True or False, got 'no'"):
        ServingLimits(allow_urls="no")
