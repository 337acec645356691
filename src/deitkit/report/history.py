"""Loss and metric curves read from a Hugging Face Trainer's `log_history`."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# eval_* entries the Trainer logs that are speeds and times, not scores of the model.
_NOT_METRICS = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}


@dataclass(frozen=True)
class Series:
    """One curve: `values` against `x` (epochs, or steps where no entry has an epoch)."""

    name: str
    x: tuple[float, ...]
    values: tuple[float, ...]
    x_name: str


def read(history: Sequence[Mapping[str, Any]], primary: str) -> tuple[list[Series], Series | None]:
    """(the loss curves, the evaluation metric curve) that `history` holds.

    Training entries carry `loss`, evaluation entries `eval_loss` and `eval_<metric>`; the
    metric is `eval_<primary>` where logged, else the first other `eval_*` score. Entries
    without the x key or with a non-number are left out; curves with no point are not returned.
    """
    x_name = "epoch" if any(_number(entry.get("epoch")) for entry in history) else "step"
    losses = [
        curve
        for curve in (
            _series(history, "loss", x_name, "training loss"),
            _series(history, "eval_loss", x_name, "evaluation loss"),
        )
        if curve is not None
    ]
    logged = [key for entry in history for key in entry if key.startswith("eval_")]
    wanted = f"eval_{primary}"
    others = [key for key in dict.fromkeys(logged) if key not in _NOT_METRICS]
    key = wanted if wanted in others else (others[0] if others else None)
    metric = _series(history, key, x_name, key) if key else None
    return losses, metric


def _series(
    history: Sequence[Mapping[str, Any]], key: str, x_name: str, name: str
) -> Series | None:
    points = [
        (float(entry[x_name]), float(entry[key]))
        for entry in history
        if _number(entry.get(x_name)) and _number(entry.get(key))
    ]
    if not points:
        return None
    xs, values = zip(*points, strict=True)
    return Series(name, xs, values, x_name)


def _number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
