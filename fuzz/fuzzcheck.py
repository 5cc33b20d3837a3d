"""Reference checks of the harnesses: exact NMS, COCO RLE strings, array shapes.

Kept apart from fuzzlib on purpose: this module is never instrumented by atheris, whose comparison
tracing leaks the result of every numpy array comparison (about 1 KB per ``a > b`` of 1000 elements;
a harness doing them in instrumented code grows by gigabytes in a few minutes). Instrumented code (the
harnesses' ``test_one_input`` and fuzzlib) must not compare numpy arrays with operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_array(a: Any, dtype: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    """``a`` is a numpy array of ``dtype`` and ``shape`` (None: any length)."""
    assert isinstance(a, np.ndarray), type(a)
    assert a.dtype == np.dtype(dtype), (a.dtype, dtype)
    assert a.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, a.shape)), (a.shape, shape)
    return a


def overlap_matrix(boxes: np.ndarray, iou: float) -> np.ndarray:
    """(N, N) bool: box i would suppress box j, exactly as the core decides it: intersection and union
    in double from float32 coordinates, the ratio rounded to float32, strictly above ``iou``; a
    non-positive intersection side or union is no overlap."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = (b[:, k] for k in range(4))
    w = np.minimum(x2[:, None], x2[None, :]).astype(np.float64) - np.maximum(x1[:, None], x1[None, :])
    h = np.minimum(y2[:, None], y2[None, :]).astype(np.float64) - np.maximum(y1[:, None], y1[None, :])
    area = (x2.astype(np.float64) - x1) * (y2.astype(np.float64) - y1)
    inter = w * h
    union = area[:, None] + area[None, :] - inter
    with np.errstate(all="ignore"):
        ratio = (inter / np.where(union > 0, union, 1.0)).astype(np.float32)
    return (w > 0) & (h > 0) & (union > 0) & (ratio > np.float32(iou))


def ref_nms(
    boxes: np.ndarray, order: Sequence[int], classes: np.ndarray, iou: float, max_det: int, agnostic: bool
) -> list[int]:
    """Greedy NMS as the core defines it (see ``overlap_matrix``), visiting boxes in ``order``."""
    over = overlap_matrix(boxes, iou)
    if not agnostic:
        cls = np.asarray(classes)
        over &= cls[:, None] == cls[None, :]
    suppressed = np.zeros(len(over), bool)
    kept: list[int] = []
    for i in order:
        if len(kept) >= max_det:
            break
        if suppressed[i]:
            continue
        kept.append(int(i))
        suppressed |= over[i]
    return kept


def decode_rle_string(s: bytes | str) -> list[int]:
    """COCO's compact RLE string back to counts (pycocotools' rleFrString), with Python ints."""
    data = s.encode() if isinstance(s, str) else s
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
