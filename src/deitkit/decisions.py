"""Per-label decision thresholds and the calibration temperature, checked alike wherever read."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

from deitkit.errors import ConfigError
from deitkit.tasks import Task, check_threshold

DEFAULT_TEMPERATURE = 1.0


def check_temperature(value: float, *, name: str = "temperature") -> float:
    """Return `value` as a finite float > 0, or raise ConfigError naming it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_label_thresholds(
    values: Mapping[str, float] | Iterable[float],
    labels: Sequence[str],
    task: Task,
    *,
    name: str = "thresholds",
) -> tuple[float, ...]:
    """One threshold per label, in `labels` order, from label → threshold or a label-order list.

    Raises:
        ConfigError: the model is multiclass, the labels named are not exactly `labels` (or the
            list is not one per label), or a value is not a number in [0, 1]; naming it.
    """
    if not task.is_multilabel:
        raise ConfigError(
            f"{name}: per-label thresholds are for multilabel models; this one is {task.value}"
        )
    if isinstance(values, Mapping):
        missing = [label for label in labels if label not in values]
        unknown = [key for key in values if key not in labels]
        if missing or unknown:
            what = [f"missing {missing}"] * bool(missing) + [f"unknown {unknown}"] * bool(unknown)
            raise ConfigError(
                f"{name} must name exactly the model's labels {list(labels)}; {', '.join(what)}"
            )
        return tuple(check_threshold(values[label], name=f"{name}[{label!r}]") for label in labels)
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ConfigError(
            f"{name} must map each label to a number in [0, 1], got {type(values).__name__}"
        )
    values = list(values)
    if len(values) != len(labels):
        raise ConfigError(
            f"{name} must hold one threshold per label ({len(labels)}), got {len(values)}"
        )
    return tuple(
        check_threshold(value, name=f"{name}[{label!r}]")
        for label, value in zip(labels, values, strict=True)
    )
