#!/usr/bin/env python3
"""Fuzz ``_core.nms`` (greedy, class-aware or agnostic) against a Python reference.

Boxes are float32 (N, 4) in any layout, with inverted, degenerate, huge and non-finite coordinates;
scores with ties and NaN; class ids anywhere in int32. A call must raise ValueError or return int64
indices that are exactly the reference's: descending score (ties: lower index first), suppress when
the float32-rounded IoU is strictly above ``iou``, at most ``max_det``.

    python fuzz/fuzz_nms.py fuzz/corpus/nms -max_total_time=60
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fuzzlib"]):
    import fuzzlib

import fuzzcheck
import numpy as np

from edgeseg import _core


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """One nms call built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    n = fuzzlib.fuzz_dim(fdp, 200)
    n_scores = fuzzlib.fuzz_dim(fdp, 200) if fuzzlib.rarely(fdp, 16) else n
    boxes = fuzzlib.fuzz_array(fdp, (np.float32,), (n, 3 if fuzzlib.rarely(fdp, 16) else 4))
    if isinstance(boxes, np.ndarray) and boxes.dtype == np.float32 and boxes.ndim == 2 and fdp.ConsumeBool():
        # mostly proper boxes (x2 >= x1) on a coarse grid, so that overlaps and ties are common
        b = np.array(boxes, dtype=np.float32)
        grid = np.float32(pick_grid(fdp))
        b = np.round(b * grid) / grid
        if b.shape[1] == 4 and fdp.ConsumeBool():
            b[:, 2:] = b[:, :2] + np.abs(b[:, 2:])
        boxes = b
    scores = fuzzlib.fuzz_array(fdp, (np.float32,), (n_scores,))
    if isinstance(scores, np.ndarray) and scores.dtype == np.float32 and fdp.ConsumeBool():
        scores = np.round(np.array(scores) * 4) / 4  # ties
    classes = None
    if fdp.ConsumeBool():
        classes = fuzzlib.fuzz_array(fdp, (np.int32,), (n + 1 if fuzzlib.rarely(fdp, 16) else n,))
        if isinstance(classes, np.ndarray) and classes.dtype == np.int32 and fdp.ConsumeBool():
            classes = np.array(classes) % 3
    iou = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 6) else fdp.ConsumeFloatInRange(0.0, 1.0)
    max_det = fuzzlib.fuzz_int(fdp, 0, 250)
    agnostic = fdp.ConsumeBool()

    fuzzlib.debug("nms", boxes=boxes, scores=scores, classes=classes, iou=iou, max_det=max_det, agnostic=agnostic)
    out = fuzzlib.value_error_or(lambda: _core.nms(boxes, scores, classes, iou, max_det, agnostic))
    if out is None:
        return
    fuzzlib.bucket(len(out))
    fuzzcheck.check_array(out, np.int64, (None,))
    b = np.asarray(boxes, np.float32)
    s = np.asarray(scores, np.float32)
    cls = np.zeros(len(s), np.int32) if classes is None else np.asarray(classes, np.int32)
    order = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
    want = fuzzcheck.ref_nms(b, order, cls, iou, max_det, agnostic)
    assert out.tolist() == want, (out.tolist(), want)


def pick_grid(fdp: atheris.FuzzedDataProvider) -> float:
    """Coordinates on a grid of 1/grid: coarse grids make exact ties and touching boxes."""
    return fuzzlib.pick(fdp, (1.0, 2.0, 10.0, 1000.0))


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
