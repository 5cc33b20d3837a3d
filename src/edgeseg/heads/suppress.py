"""Suppression of overlapping candidates by the kind ``PostprocessOptions.nms`` names: one home for every head.

- ``"box"``: greedy NMS by box IoU (Ultralytics / torchvision): a candidate goes when its IoU with a kept one
  of its class is above ``iou``.
- ``"fast"``: YOLACT's Fast NMS: per class the best ``FAST_TOP_K`` candidates; one goes when its IoU with any
  higher-scored one (kept or not) is above ``iou``. Slightly more suppressive than greedy NMS, and free of its
  sequential loop.
- ``"matrix"``: SOLOv2's Matrix NMS: nothing goes for overlapping; scores decay with the overlap (Gaussian
  kernel, sigma ``MATRIX_SIGMA``), and decayed scores below ``conf`` go. By mask IoU when the candidates'
  masks are given (SOLOv2), else by box IoU. ``iou`` is not used.
- ``"mask"``: greedy NMS by the IoU of the candidates' bit-packed masks: occluded and overlapping objects whose
  boxes overlap much but whose masks do not keep their own instance.

The work is done by the C++ core (``_core.nms``, ``fast_nms``, ``matrix_nms``, ``mask_matrix_nms``,
``mask_nms``); this module only picks one and passes the options.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _core
from .base import PostprocessOptions

FAST_TOP_K = 200
"""Candidates per class entering Fast NMS (YOLACT's ``top_k``)."""
MATRIX_KERNEL = "gaussian"
"""Matrix NMS decay kernel (SOLOv2's default; ``"linear"`` is the other)."""
MATRIX_SIGMA = 2.0
"""Gaussian kernel's sigma (SOLOv2's)."""

MaskCrops = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Candidates' masks as a ``_core.MaskSet``'s (rects, offsets, bits), one per candidate."""


def suppress(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray | None,
    options: PostprocessOptions,
    masks: MaskCrops | Callable[[], MaskCrops] | None = None,
    *,
    fast_top_k: int = FAST_TOP_K,
    matrix_kernel: str = MATRIX_KERNEL,
    matrix_sigma: float = MATRIX_SIGMA,
    pre_topk: int = -1,
) -> _core.NmsResult:
    """The candidates that ``options.nms`` keeps, best first (at most ``options.max_det``).

    Args:
        boxes: (N, 4) float32 x1 y1 x2 y2 candidates (any one pixel space).
        scores: (N,) float32 scores; for ``"fast"`` also an (N, C) score matrix (``class_ids`` None), whose
            columns are separate candidate sets (YOLACT).
        class_ids: (N,) int32 classes, None for one class (or with a score matrix).
        options: ``nms`` picks the kind; ``iou``, ``max_det``, ``agnostic`` apply as each kind reads them;
            Matrix NMS drops decayed scores below ``conf``.
        masks: the candidates' masks, or a function making them (called only when needed): required by
            ``"mask"``; ``"matrix"`` uses them when given, else box IoU.
        fast_top_k, matrix_kernel, matrix_sigma: the family's Fast / Matrix NMS settings.
        pre_topk: Matrix NMS: most candidates entering the matrix, best first (-1: all; SOLOv2's ``nms_pre``).

    Returns:
        ``_core.NmsResult``: indices into the candidates, their scores (Matrix NMS: decayed) and classes.
    """
    kind = options.nms
    if kind == "fast":
        return _core.fast_nms(
            boxes,
            scores,
            class_ids,
            iou=options.iou,
            top_k=fast_top_k,
            max_det=options.max_det,
            agnostic=options.agnostic,
        )
    if np.ndim(scores) != 1:
        raise ValueError(f"nms={kind!r} takes one score per candidate, got scores of shape {np.shape(scores)}")
    if kind == "box":
        keep = _core.nms(boxes, scores, class_ids, options.iou, options.max_det, options.agnostic)
        classes = np.zeros(len(keep), np.int32) if class_ids is None else np.asarray(class_ids)[keep]
        return _core.NmsResult(keep, np.asarray(scores)[keep], classes)
    crops = masks() if callable(masks) else masks
    if kind == "matrix":
        settings = {
            "kernel": matrix_kernel,
            "sigma": matrix_sigma,
            "pre_topk": pre_topk,
            "max_det": options.max_det,
            "filter_thr": options.conf,
            "agnostic": options.agnostic,
        }
        if crops is None:
            return _core.matrix_nms(boxes, scores, class_ids, **settings)
        return _core.mask_matrix_nms(*crops, scores, class_ids, **settings)
    if kind == "mask":
        if crops is None:
            raise ValueError("nms='mask' needs the candidates' masks")
        return _core.mask_nms(
            *crops, scores, class_ids, iou=options.iou, max_det=options.max_det, agnostic=options.agnostic
        )
    raise ValueError(f"nms must be one of 'box', 'fast', 'matrix', 'mask', got {kind!r}")
