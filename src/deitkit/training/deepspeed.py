"""DeepSpeed configuration: the shipped ZeRO stage 1 config, or the user's file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError

SHIPPED_CONFIG = "deepspeed_zero1.json"


def shipped_config() -> dict[str, Any]:
    """Azure's default when apply_deepspeed has no config: ZeRO 1, "auto" values throughout."""
    text = resources.files("deitkit.resources").joinpath(SHIPPED_CONFIG).read_text()
    return json.loads(text)


def deepspeed_config(*, apply_deepspeed: bool, user_file: str | None) -> dict[str, Any] | None:
    """The config dict for TrainingArguments(deepspeed=...), or None when DeepSpeed is off.

    "auto" values are filled in by the Trainer from its own arguments, so precision follows
    --precision (fp16 only where the GPU runs it; bf16 or fp32 otherwise).
    """
    if user_file:
        path = Path(user_file)
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"--deepspeed {path}: not a readable JSON file ({err})") from None
        if not isinstance(config, dict):
            raise ConfigError(f"--deepspeed {path}: expected a JSON object")
        return config
    if apply_deepspeed:
        return shipped_config()
    return None
