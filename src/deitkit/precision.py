"""Precision: one vocabulary (fp32, fp16, bf16, int8) for training and inference, and the CPU check.

Training and inference both use these names inside deitkit; other spellings (Azure's "32" and
"16", torch's "float32" and "bfloat16") are mapped once, where they enter, by `parse_precision`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from deitkit.errors import ConfigError

AUTO = "auto"
FP32, FP16, BF16, INT8 = "fp32", "fp16", "bf16", "int8"
NAMES = (FP32, FP16, BF16, INT8)
# Spellings accepted where a precision enters deitkit (CLI flags, component inputs, env vars).
ALIASES = {"32": FP32, "float32": FP32, "16": FP16, "float16": FP16, "bfloat16": BF16}
_BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}


@dataclass(frozen=True)
class Precision:
    """What a model runs in (one of NAMES), and why it was chosen."""

    name: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == BF16

    @property
    def fp16(self) -> bool:
        return self.name == FP16


def parse_precision(value: str, *, allowed: Iterable[str], where: str) -> str:
    """The internal name for `value` (an internal name or an alias), if it is in `allowed`.

    Args:
        value: As the user wrote it.
        allowed: Internal names (and `auto`) acceptable here.
        where: Names the input in the error (a flag, an environment variable).

    Raises:
        ConfigError: `value` is not one of `allowed` under any spelling, naming them.
    """
    allowed = tuple(allowed)
    text = str(value).strip().lower()
    name = ALIASES.get(text, text)
    if name not in allowed:
        spellings = [*allowed, *(a for a, n in ALIASES.items() if n in allowed)]
        raise ConfigError(
            f"{where} {value!r} is not supported; expected one of: {', '.join(spellings)}"
        )
    return name


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 matrix instructions (Sapphire Rapids and later, Zen 4)."""
    return bool(_BF16_CPU_FLAGS & cpu_flags())
