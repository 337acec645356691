"""How much a zip may hold and inflate: limits with defaults, overridable from the environment."""

from __future__ import annotations

import math
from dataclasses import dataclass

from deitkit.env_numbers import env_numbers
from deitkit.errors import ConfigError

# Apache POI's ZipSecureFile refuses entries that inflate more than 100x; real image data
# (JPEG/PNG) barely compresses, so only a bomb gets near that.
DEFAULT_MAX_RATIO = 100.0


@dataclass(frozen=True)
class ArchiveLimits:
    """What a zip must satisfy to be extracted; checked on the headers, then on the real bytes.

    Attributes:
        max_entries: Most entries (files and folders). 100,000 holds any image dataset that is
            imported through a zip (ImageNet's validation set has 50,000 images).
        max_total_bytes: Most bytes all entries decompress to together (20 GiB): declared by
            the central directory before anything is written, then counted while writing,
            since headers can lie.
        max_ratio: Most the whole archive may inflate (bytes out per byte of zip file), and
            each entry over 1 MiB (per compressed byte); None: no ratio cap.
    """

    max_entries: int = 100_000
    max_total_bytes: int = 20 * 2**30
    max_ratio: float | None = DEFAULT_MAX_RATIO

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_total_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ArchiveLimits.{name} must be an integer >= 1, got {value!r}")
        ratio = self.max_ratio
        if ratio is not None and (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not math.isfinite(ratio)
            or ratio < 1
        ):
            raise ConfigError(f"ArchiveLimits.max_ratio must be a number >= 1, got {ratio!r}")


# Field → environment variable; each one overrides the default when set and non-empty.
ENV_NAMES = {
    "max_entries": "DEITKIT_ZIP_MAX_ENTRIES",
    "max_total_bytes": "DEITKIT_ZIP_MAX_BYTES",
    "max_ratio": "DEITKIT_ZIP_MAX_RATIO",
}


def archive_limits_from_env() -> ArchiveLimits:
    """ArchiveLimits with each field read from its variable in `ENV_NAMES` when set.

    Raises:
        ConfigError: a variable is not a number >= 1 (an integer for the counts), naming the
            variable and its value.
    """
    values = env_numbers(ENV_NAMES, {"max_ratio": "number"})
    return ArchiveLimits(**values)
