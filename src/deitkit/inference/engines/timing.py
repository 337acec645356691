"""Timing engines at start-up: a warm-up, then a few passes at a serving-sized batch."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from deitkit.inference.engines.base import Engine

# seconds per image = timer(engine, pixels, give_up): injectable so tests never depend on
# timings. `give_up` is seconds per image past which the warm-up alone settles it (the engine
# has lost already); inf for the first engine timed.
Timer = Callable[[Engine, torch.Tensor, float], float]
# The warm-up counts as a sample: ONNX Runtime's first pass at batch 1 is within a few per cent
# of the next, torch's up to 1.6x slower (its pass decides), measured on AVX2. A warm-up and one
# pass per engine keep timing 2 engines at ~1.5 s of start-up for DeiT-base on 2 AVX2 cores.


def time_engine(engine: Engine, pixels: torch.Tensor, give_up: float = float("inf")) -> float:
    """Best seconds per image of a warm-up and one pass of `pixels`.

    The warm-up pays one-time costs (ONNX Runtime's first-run allocations, kernel selection),
    so it only wins when the pass is disturbed; the best run is the one least disturbed by
    other work on the machine. A warm-up slower than `give_up` per image is returned as it
    is: that engine will not be chosen, and its pass would only delay the start.
    """
    start = time.perf_counter()
    engine(pixels)
    warm_up = time.perf_counter() - start
    if warm_up / len(pixels) > give_up:
        return warm_up / len(pixels)
    start = time.perf_counter()
    engine(pixels)
    return min(warm_up, time.perf_counter() - start) / len(pixels)
