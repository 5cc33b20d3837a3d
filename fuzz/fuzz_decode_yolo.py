#!/usr/bin/env python3
"""Fuzz ``_core.decode_yolo`` (raw YOLO-seg head: threshold, argmax, top-k, NMS).

Inputs: a (4 + classes + coeffs, anchors) prediction of float32/int8/uint8 in any layout (transposed,
strided, reversed, broadcast, unaligned), with NaN/inf/extreme values, quantizations from sane to
absurd, and options from valid to out of range. A call must raise ValueError or return detections
that are well formed: shapes and dtypes, scores strictly above ``conf`` and descending, classes in
range and allowed, finite values, at most ``max_det``, and no two kept boxes of one class (any class
when agnostic) overlapping above ``iou``.

    python fuzz/fuzz_decode_yolo.py fuzz/corpus/decode_yolo -max_total_time=60
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
    """One decode_yolo call built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    nc = fdp.ConsumeIntInRange(1, 12)
    nm = fdp.ConsumeIntInRange(0, 6)
    anchors = fuzzlib.fuzz_dim(fdp, 3000)
    rows = 4 + nc + nm
    if fuzzlib.rarely(fdp, 16):
        rows = fdp.ConsumeIntInRange(0, rows + 2)  # too few (or extra) features: ValueError or more coeffs
    pred = fuzzlib.fuzz_array(fdp, (np.float32, np.int8, np.uint8), (rows, anchors))
    if isinstance(pred, np.ndarray) and pred.ndim == 2 and fdp.ConsumeBool():
        # anchor-major model output read through a transposed view, as the head does
        pred = np.ascontiguousarray(pred.T).T if fdp.ConsumeBool() else pred
    dtype = pred.dtype if isinstance(pred, np.ndarray) else np.float32
    quant = fuzzlib.fuzz_quant(fdp, dtype)
    num_classes = fuzzlib.fuzz_int(fdp, -2, 20) if fuzzlib.rarely(fdp, 8) else nc
    conf = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 6) else fdp.ConsumeFloatInRange(0.0, 1.0)
    iou = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 6) else fdp.ConsumeFloatInRange(0.0, 1.0)
    max_det = fuzzlib.fuzz_int(fdp, 0, 400)
    topk = fuzzlib.fuzz_int(fdp, 1, 5000)
    agnostic = fdp.ConsumeBool()
    allowed = None
    if fdp.ConsumeBool():
        allowed = fuzzlib.fuzz_array(fdp, (np.uint8,), (max(num_classes, 0) if num_classes < 64 else 3,))
    box_scale = (1.0, 1.0)
    if fuzzlib.rarely(fdp, 4):
        box_scale = (fuzzlib.fuzz_float(fdp), fuzzlib.fuzz_float(fdp))

    # F1: num_classes near INT64_MAX overflows the feature-count check in the core.
    if fuzzlib.known("F1", num_classes > 2**62):
        return
    # F8: a quant pybind11 cannot cast.
    if fuzzlib.known("F8", fuzzlib.malformed_quant(quant)):
        return
    # F10: raw - zero_point overflows int32.
    if fuzzlib.known("F10", fuzzlib.zero_point_overflows(quant)):
        return
    # F6: a quantization scale large enough to turn a score into +inf.
    if fuzzlib.known("F6", isinstance(quant, tuple) and len(quant) == 2 and _overflows(quant)):
        return

    fuzzlib.debug(
        "decode_yolo",
        pred=pred,
        num_classes=num_classes,
        conf=conf,
        iou=iou,
        max_det=max_det,
        topk=topk,
        agnostic=agnostic,
        allowed=allowed,
        quant=quant,
        box_scale=box_scale,
    )
    out = fuzzlib.value_error_or(
        lambda: _core.decode_yolo(pred, num_classes, conf, iou, max_det, topk, agnostic, allowed, quant, box_scale)
    )
    if out is None:
        return
    check(out, pred, num_classes, conf, iou, max_det, topk, agnostic, allowed)


def _overflows(quant: tuple) -> bool:
    scale, zp = quant
    try:
        return abs(float(scale)) * (256 + abs(int(zp))) > 3.4e38
    except (TypeError, ValueError, OverflowError):
        return False


def check(out, pred, num_classes, conf, iou, max_det, topk, agnostic, allowed) -> None:
    """The decode result is well formed (see the module doc)."""
    assert isinstance(out, tuple) and len(out) == 4
    boxes, scores, classes, coeffs = out
    n = len(scores)
    fuzzlib.bucket(n)
    nm = pred.shape[0] - 4 - num_classes
    fuzzcheck.check_array(boxes, np.float32, (n, 4))
    fuzzcheck.check_array(scores, np.float32, (n,))
    fuzzcheck.check_array(classes, np.int32, (n,))
    fuzzcheck.check_array(coeffs, np.float32, (n, nm))
    assert n <= max_det and n <= topk, (n, max_det, topk)
    assert np.isfinite(boxes).all() and np.isfinite(scores).all() and np.isfinite(coeffs).all()
    assert (scores > np.float32(conf)).all(), (scores, conf)
    assert (np.diff(scores) <= 0).all(), "scores not descending"
    assert ((classes >= 0) & (classes < num_classes)).all()
    if allowed is not None:
        assert np.asarray(allowed)[classes].all(), "a filtered-out class was returned"
    # kept boxes do not suppress each other
    kept = fuzzcheck.ref_nms(boxes, range(n), classes, iou, n, agnostic)
    assert kept == list(range(n)), f"NMS kept overlapping boxes: {kept} of {n}"


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
