"""What every head takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._core import Letterbox
from ..masks import InstanceMasks


@dataclass(frozen=True)
class PostprocessOptions:
    """Thresholds and limits of one call (see ``Model.__call__``)."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    pre_nms_topk: int = 30000
    agnostic: bool = False
    class_allowed: np.ndarray | None = None  # uint8 flag per class, None for all
    soft_masks: bool = False


@dataclass
class Instances:
    """Instances of one image in original-image pixels."""

    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32
    masks: InstanceMasks


class Head(Protocol):
    """Decodes one image of a batch from raw outputs."""

    def __call__(
        self, outputs: list[np.ndarray], index: int, letterbox: Letterbox, options: PostprocessOptions
    ) -> Instances:
        """Instances of image ``index`` of the batch whose raw outputs are ``outputs``."""
        ...

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest class score in the raw outputs of image ``index`` (for health checks)."""
        ...
