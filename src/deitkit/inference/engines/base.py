"""An inference engine: normalised pixels (N, 3, H, W) float32 in, logits (N, C) float32 out."""

from __future__ import annotations

import abc

import torch

from deitkit.inference.engines.names import backend_of, dtype_of


class Engine(abc.ABC):
    """Runs one model in one backend and precision; everything around it is shared.

    Decoding, preprocessing, batching, the activation and the Prediction are the Classifier's,
    the same for every engine, so engines differ only in how they turn pixels into logits.

    Attributes:
        name: One of `deitkit.inference.engines.names.ENGINES`.
    """

    name: str

    @property
    def backend(self) -> str:
        return backend_of(self.name)

    @property
    def dtype(self) -> str:
        return dtype_of(self.name)

    @abc.abstractmethod
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) float32 on the CPU for normalised pixels (N, 3, H, W) float32."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"
