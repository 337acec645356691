"""What one scoring request may hold: body bytes, images, decoded pixels, URL downloads (if any)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from deitkit.env_numbers import env_numbers
from deitkit.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServingLimits:
    """Caps checked on every request before any model work.

    Attributes:
        max_body_bytes: Largest request body. 32 MiB holds 64 base64 photos of about 370 KB
            each; Azure's own front end stops bodies at 100 MB.
        max_images: Most images in one request. 64 keeps one request's decoding and scoring
            well under Azure's 90 s request timeout on a 4-core CPU.
        url_max_bytes: Largest image downloaded from a URL (20 MiB covers a 50 MP JPEG).
        url_timeout: Seconds one URL download may take in all: connect, redirects, body.
        max_request_pixels: Most pixels (width x height, from each header, summed) of one
            request's images. 512 M is 8 images at the per-image cap (64 M,
            DEITKIT_MAX_IMAGE_PIXELS). Memory does not grow with it (images are decoded one at
            a time, see docs/serving.md); decoding time does: a 64 M-pixel PNG takes 1-3 s.
        allow_urls: Whether http(s) URL inputs are fetched at all; an operator whose endpoint
            must never reach out turns them off (`DEITKIT_ALLOW_URLS=false`).
    """

    max_body_bytes: int = 32 * MIB
    max_images: int = 64
    url_max_bytes: int = 20 * MIB
    url_timeout: float = 10.0
    max_request_pixels: int = 512_000_000
    allow_urls: bool = True

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_images", "url_max_bytes", "max_request_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ServingLimits.{name} must be an integer >= 1, got {value!r}")
        timeout = self.url_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ConfigError(f"ServingLimits.url_timeout must be seconds > 0, got {timeout!r}")
        if not isinstance(self.allow_urls, bool):
            raise ConfigError(
                f"ServingLimits.allow_urls must be True or False, got {self.allow_urls!r}"
            )


# Field → environment variable; each one overrides the default when set and non-empty.
ENV_NAMES = {
    "max_body_bytes": "DEITKIT_MAX_BODY_BYTES",
    "max_images": "DEITKIT_MAX_IMAGES",
    "url_max_bytes": "DEITKIT_URL_MAX_BYTES",
    "url_timeout": "DEITKIT_URL_TIMEOUT",
    "max_request_pixels": "DEITKIT_MAX_REQUEST_PIXELS",
}


ALLOW_URLS_ENV = "DEITKIT_ALLOW_URLS"
_SWITCH = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def serving_limits_from_env() -> ServingLimits:
    """ServingLimits with each field read from its variable in `ENV_NAMES` when set.

    `allow_urls` comes from DEITKIT_ALLOW_URLS: true/1/yes or false/0/no, any case.

    Raises:
        ConfigError: a variable is not a positive number (an integer for byte and image
            counts), or DEITKIT_ALLOW_URLS is not one of those words, naming the variable and
            its value.
    """
    values = env_numbers(ENV_NAMES, {"url_timeout": "seconds"})
    switch = os.environ.get(ALLOW_URLS_ENV, "").strip()
    if switch:
        if switch.lower() not in _SWITCH:
            raise ConfigError(
                f"{ALLOW_URLS_ENV}={switch!r} is invalid: expected true or false (or 1/0, yes/no)"
            )
        values["allow_urls"] = _SWITCH[switch.lower()]
    return ServingLimits(**values)
