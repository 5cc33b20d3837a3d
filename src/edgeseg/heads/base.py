"""What every head takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .. import _core
from .._core import Letterbox
from ..masks import InstanceMasks
from ..spec import Layout, LoadContext, ModelSpec


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
    nms: str = "box"  # "box" | "fast" | "matrix" | "mask": how candidates are suppressed
    mask_threshold: float = 0.5  # probability above which a pixel is in the mask (families with probabilities)


@dataclass
class Instances:
    """Instances of one image in original-image pixels."""

    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32
    masks: InstanceMasks


def instances_of(found: _core.Instances, lb: Letterbox) -> Instances:
    """The core's instances of one image (a whole-postprocess call) as a head returns them."""
    m = found.masks
    masks = InstanceMasks(m.rects, m.offsets, m.bits, (lb.src_h, lb.src_w), m.probs, m.areas)
    return Instances(found.boxes, found.scores, found.class_ids, masks)


class Head(Protocol):
    """Decodes one image of a batch from raw outputs."""

    core_layout: Any
    """The layout as the C++ API takes it (``_core.YoloLayout``, ``SplitLayout``, ``YolactLayout``, ``DetsLayout``,
    ``RtmdetLayout`` or ``Solov2Layout``): the struct a C++ user fills for the same model's one-call postprocess."""

    def __call__(
        self, outputs: list[np.ndarray], index: int, letterbox: Letterbox, options: PostprocessOptions
    ) -> Instances:
        """Instances of image ``index`` of the batch whose raw outputs are ``outputs``."""
        ...

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest class score in the raw outputs of image ``index`` (for health checks)."""
        ...


class Family(Protocol):
    """A model family: detects its output layouts in a loaded model and makes their decoders.

    Each family lives in its own module of ``edgeseg.heads`` with a module-level ``FAMILY``;
    ``edgeseg.heads.FAMILIES`` lists them. Adding a family touches nothing else.
    """

    name: str
    """The family's name, as ``edgeseg.load(..., head=name)`` forces it."""
    layouts: str
    """The layouts it reads, one block of text (listed when a model fits no family)."""
    options: tuple[str, ...]
    """Names of the load options (``edgeseg.load(..., options={...})``) it understands."""

    def detect(self, ctx: LoadContext) -> Layout | None:
        """This family's layout of the model, or None when the model is not of this family.

        Raises ModelError (``ctx.unsupported``) for a model that is clearly of this family but whose
        outputs do not fit together (a wrong coefficient count, priors of the wrong length, ...).
        """
        ...

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder of a model whose spec this family's ``detect`` produced."""
        ...
