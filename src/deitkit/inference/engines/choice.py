"""The start-up choice: of the engines the record allows and this machine runs, the fastest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from deitkit.errors import ConfigError
from deitkit.inference.engines.base import Engine
from deitkit.inference.engines.names import (
    ENGINES,
    ONNX_FP32,
    ONNX_INT8,
    REFERENCE,
    TORCH_BF16,
    TORCH_FP32,
    TORCH_INT8,
)
from deitkit.inference.engines.offers import Offers
from deitkit.inference.engines.record import EngineRecord
from deitkit.inference.engines.requests import Request
from deitkit.inference.engines.timing import Timer, time_engine

log = logging.getLogger(__name__)

_TIMING_ORDER = (ONNX_INT8, ONNX_FP32, TORCH_INT8, TORCH_BF16, TORCH_FP32)
# A warm-up this many times slower per image than the best timed engine ends that engine's
# timing: one-time costs do not make up such a gap.
GIVE_UP_FACTOR = 1.5


@dataclass(frozen=True)
class EngineChoice:
    """The engine serving a model and why; `timings` in milliseconds per image, when timed."""

    name: str
    reason: str
    timings: dict[str, float] = field(default_factory=dict)


def choose_engine(
    offers: Offers,
    record: EngineRecord,
    request: Request,
    *,
    pixels: torch.Tensor,
    timer: Timer = time_engine,
) -> tuple[Engine, EngineChoice]:
    """Build and return the engine to serve with, and the choice with its reason.

    Candidates are the engines `request` matches that this machine runs at full speed and
    `record` allows. An explicit request whose engines the record refuses (or that run slowly
    here) still gets them, with a warning saying so. One candidate is used as it is; several
    are timed on `pixels` and the fastest serves.

    Raises:
        ConfigError: the request matches no engine this machine can run for this model, naming
            the request and why each engine it names is missing.
    """
    runnable = [name for name in ENGINES if name in offers.offers and request.matches(name)]
    candidates = [n for n in runnable if record.allowed(n) and not offers.offers[n].slow]
    note = ""
    if not runnable:
        why = "; ".join(
            f"{name}: {offers.missing[name]}"
            for name in ENGINES
            if request.matches(name) and name in offers.missing
        )
        raise ConfigError(f"{request.source}: no engine of that kind runs here ({why})")
    if not candidates and not request.explicit:
        # Only a hand-edited record refuses the reference; fp32 is still right.
        candidates, note = [REFERENCE], "the record allows no engine; the fp32 reference serves"
        log.warning("%s", note)
    elif not candidates:
        fast = [n for n in runnable if not offers.offers[n].slow]
        candidates = fast or runnable
        refusals = "; ".join(_refusal(n, offers, record) for n in candidates)
        note = f"{request.source} asks for it, although {refusals}"
        log.warning("running %s: %s", " or ".join(candidates), note)
    if len(candidates) == 1:
        name = candidates[0]
        engine = offers.offers[name].build()
        return engine, EngineChoice(name, note or _only_reason(name, request))
    timings: dict[str, float] = {}
    best: Engine | None = None
    # Likeliest fastest first (ONNX Runtime int8, then fp32, then torch), so that the slower
    # engines' warm-ups already show they have lost (see `time_engine`).
    for name in sorted(candidates, key=_TIMING_ORDER.index):
        engine = offers.offers[name].build()
        give_up = GIVE_UP_FACTOR * timings[best.name] / 1000 if best else float("inf")
        timings[name] = timer(engine, pixels, give_up) * 1000
        if best is None or timings[name] < timings[best.name]:
            best = engine
        del engine  # a slower engine's model or session is freed before the next is built
    assert best is not None
    shown = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(timings.items(), key=_by_ms))
    reason = f"fastest at batch {len(pixels)} (ms/img: {shown})"
    if note:
        reason = f"{reason}; {note}"
    elif request.explicit:
        reason = f"{reason}; as {request.source} asks"
    return best, EngineChoice(best.name, reason, timings)


def _only_reason(name: str, request: Request) -> str:
    if request.explicit:
        return f"the one allowed engine {request.source} matches"
    if name == REFERENCE:
        return "the only engine allowed here (fp32 reference)"
    return "the only engine allowed here"


def _refusal(name: str, offers: Offers, record: EngineRecord) -> str:
    if offers.offers[name].slow:
        return f"{name}: {offers.offers[name].slow}"
    return f"the record refuses {name} ({record.verdicts[name].reason})"


def _by_ms(item: tuple[str, float]) -> float:
    return item[1]
