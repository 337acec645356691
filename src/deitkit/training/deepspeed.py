"""DeepSpeed configuration: the shipped ZeRO stage 1 config, or the user's file."""

from __future__ import annotations

import json
import logging
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError

log = logging.getLogger(__name__)

SHIPPED_CONFIG = "deepspeed_zero1.json"
_SHM_COMM_OP = "deepspeed_shm_comm"
ZERO_STAGES = (0, 1, 2, 3)


def shipped_config() -> dict[str, Any]:
    """`--apply-deepspeed`'s config: ZeRO stage 1, "auto" wherever the Trainer knows the value.

    It names no optimizer and no scheduler on purpose: the Trainer then builds the ones
    `--optimizer` and `--lr-scheduler` ask for and DeepSpeed wraps them, and no DeepSpeed C++
    optimizer op has to be compiled first (its "AdamW" builds `fused_adam` on CPUs, minutes on a
    small machine). `zero_allow_untested_optimizer` admits SGD and Adafactor, which ZeRO 1 and 2
    step like any torch optimizer.
    """
    text = resources.files("deitkit.resources").joinpath(SHIPPED_CONFIG).read_text()
    return json.loads(text)


def deepspeed_config(*, apply_deepspeed: bool, user_file: str | None) -> dict[str, Any] | None:
    """The config dict for TrainingArguments(deepspeed=...), or None when DeepSpeed is off.

    The user's file wins over `--apply-deepspeed`. "auto" values are filled in by the Trainer
    from its own arguments, so precision follows `--precision` (fp16 only on GPUs; bf16 or fp32
    otherwise) and batch sizes, accumulation and clipping follow their flags.

    Raises:
        ConfigError: DeepSpeed is not installed, or the file is unreadable, not a JSON object,
            or names a ZeRO stage other than 0-3.
    """
    if not user_file and not apply_deepspeed:
        return None
    flag = f"--deepspeed {user_file}" if user_file else "--apply-deepspeed"
    if find_spec("deepspeed") is None:
        raise ConfigError(f"{flag} needs the deepspeed package: pip install 'deitkit[training]'")
    config = _read(Path(user_file)) if user_file else shipped_config()
    _check_stage(config, flag)
    return config


def _read(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"--deepspeed {path}: not a readable JSON file ({err})") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"--deepspeed {path}: expected a JSON object, got {type(config).__name__}"
        )
    return config


def _check_stage(config: dict[str, Any], flag: str) -> None:
    zero = config.get("zero_optimization", {})
    if not isinstance(zero, dict):
        raise ConfigError(f"{flag}: zero_optimization must be an object, got {zero!r}")
    stage = zero.get("stage", 0)
    # bool is an int subclass; `true` is no stage.
    if isinstance(stage, bool) or stage not in ZERO_STAGES:
        raise ConfigError(
            f"{flag}: zero_optimization.stage {stage!r} is not one of "
            f"{', '.join(map(str, ZERO_STAGES))}"
        )


def skip_cpu_inference_comm_build() -> None:
    """On DeepSpeed's CPU accelerator, mark its shared-memory all-reduce op as unavailable.

    DeepSpeed compiles that C++ op when its comm backend starts (a minute or more, the first
    time, on a small machine), yet only inference all-reduce uses it: training all-reduces go
    through torch.distributed (gloo on CPUs), and without the op inference falls back to it too.
    Call in every process before the Trainer starts; a DeepSpeed without this hook only costs the
    compile.
    """
    try:
        import deepspeed.ops
        from deepspeed.accelerator import get_accelerator

        if get_accelerator().device_name() == "cpu":
            # deepspeed.ops keeps one probed dict; its own comment says edits to it persist.
            deepspeed.ops.__compatible_ops__[_SHM_COMM_OP] = False
    except (ImportError, AttributeError, TypeError) as err:
        log.debug("DeepSpeed shm comm op left as it is: %s", err)
