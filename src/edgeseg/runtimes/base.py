"""The small protocol every inference runtime implements (ONNX Runtime now, LiteRT next)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union, runtime_checkable

import numpy as np

Dim = Union[int, None]
"""A tensor dimension: an int, or None when the model leaves it dynamic."""


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape, dtype and (for quantized tensors) scale/zero point of one model input or output."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Real values of raw output values: ``(q - zero_point) * scale`` in float32, as the reference
        computes them; float tensors are returned as they are."""
        if self.scale is None:
            return values
        return (values.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)

    @property
    def quant(self) -> tuple[float, int] | None:
        """``(scale, zero_point)`` of a quantized tensor, as the core takes it; None for float tensors."""
        return None if self.scale is None else (self.scale, int(self.zero_point or 0))

    def describe(self) -> str:
        """``name [d0, d1, ...] dtype`` with dynamic dimensions shown as ``?``."""
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {np.dtype(self.dtype).name}"


@runtime_checkable
class Runtime(Protocol):
    """What edgeseg needs from an inference engine. Implementations must allow concurrent ``run`` calls."""

    name: str
    """Short runtime name, e.g. ``"onnxruntime"``."""

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs."""
        ...

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs, in the order ``run`` returns them."""
        ...

    @property
    def metadata(self) -> dict[str, str]:
        """Custom metadata stored in the model file (empty when there is none)."""
        ...

    @property
    def providers(self) -> list[str]:
        """Execution providers or delegates actually in use, highest priority first."""
        ...

    @property
    def threads(self) -> int | None:
        """Intra-op threads requested (None: the runtime's default)."""
        ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns every output, in ``outputs`` order."""
        ...
