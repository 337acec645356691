"""Fixed input batches for the export check and the start-up timing: the same on every run."""

from __future__ import annotations

import torch


def fixed_pixels(count: int, height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """A (count, 3, H, W) uint8 batch: half pixel noise, half smooth colour fields.

    Noise has the high frequencies of texture, the smooth fields the flat regions of photos; the
    seed makes every check and timing see the same images.
    """
    generator = torch.Generator().manual_seed(seed)
    half = count // 2
    noise = torch.randint(0, 256, (half, 3, height, width), generator=generator)
    coarse = torch.rand((count - half, 3, 4, 4), generator=generator) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return torch.cat([noise, smooth.round()]).to(torch.uint8)
