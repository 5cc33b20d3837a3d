#!/usr/bin/env python3
"""Fuzz ``_core.decode_yolo_e2e`` (end-to-end head: rows of x1 y1 x2 y2 score class coeffs, NMS done).

A call must raise ValueError or return at most ``max_det`` finite detections, in row order, with
scores strictly above ``conf``, allowed classes in range, and exactly the rows a plain Python loop
over the (dequantized) input keeps.

    python fuzz/fuzz_decode_e2e.py fuzz/corpus/decode_e2e -max_total_time=60
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
    """One decode_yolo_e2e call built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    nc = fdp.ConsumeIntInRange(1, 12)
    cols = 6 + fdp.ConsumeIntInRange(0, 6)
    if fuzzlib.rarely(fdp, 16):
        cols = fdp.ConsumeIntInRange(0, 7)
    rows = fuzzlib.fuzz_dim(fdp, 400)
    pred = fuzzlib.fuzz_array(fdp, (np.float32, np.int8, np.uint8), (rows, cols))
    float_rows = isinstance(pred, np.ndarray) and pred.dtype == np.float32 and pred.ndim == 2 and pred.shape[1] > 5
    if float_rows and fdp.ConsumeBool():  # mostly valid class ids, so rows get through to the checks
        pred = np.array(pred)
        pred[:, 5] = np.float32(fdp.ConsumeIntInRange(-1, nc))
    dtype = pred.dtype if isinstance(pred, np.ndarray) else np.float32
    quant = fuzzlib.fuzz_quant(fdp, dtype)
    num_classes = fuzzlib.fuzz_int(fdp, -2, 20) if fuzzlib.rarely(fdp, 8) else nc
    conf = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 6) else fdp.ConsumeFloatInRange(0.0, 1.0)
    max_det = fuzzlib.fuzz_int(fdp, 0, 400)
    allowed = None
    if fdp.ConsumeBool():
        allowed = fuzzlib.fuzz_array(fdp, (np.uint8,), (max(num_classes, 0) if num_classes < 64 else 3,))
    box_scale = (1.0, 1.0)
    if fuzzlib.rarely(fdp, 4):
        box_scale = (fuzzlib.fuzz_float(fdp), fuzzlib.fuzz_float(fdp))

    if fuzzlib.known("F8", fuzzlib.malformed_quant(quant)):
        return
    # F10: raw - zero_point overflows int32.
    if fuzzlib.known("F10", fuzzlib.zero_point_overflows(quant)):
        return

    fuzzlib.debug(
        "decode_yolo_e2e",
        pred=pred,
        num_classes=num_classes,
        conf=conf,
        max_det=max_det,
        allowed=allowed,
        quant=quant,
        box_scale=box_scale,
    )
    out = fuzzlib.value_error_or(
        lambda: _core.decode_yolo_e2e(pred, num_classes, conf, max_det, allowed, quant, box_scale)
    )
    if out is None:
        return
    check(out, pred, num_classes, conf, max_det, allowed, quant, box_scale)


def check(out, pred, num_classes, conf, max_det, allowed, quant, box_scale) -> None:
    """Well formed, and the same rows as a straightforward reference."""
    assert isinstance(out, tuple) and len(out) == 4
    boxes, scores, classes, coeffs = out
    n = len(scores)
    fuzzlib.bucket(n)
    nm = pred.shape[1] - 6
    fuzzcheck.check_array(boxes, np.float32, (n, 4))
    fuzzcheck.check_array(scores, np.float32, (n,))
    fuzzcheck.check_array(classes, np.int32, (n,))
    fuzzcheck.check_array(coeffs, np.float32, (n, nm))
    assert n <= max_det
    assert np.isfinite(boxes).all() and np.isfinite(scores).all() and np.isfinite(coeffs).all()
    assert (scores > np.float32(conf)).all()
    assert ((classes >= 0) & (classes < num_classes)).all()
    if allowed is not None:
        assert np.asarray(allowed)[classes].all()
    # reference: dequantize in float32 as the core does, keep rows in order
    if pred.dtype == np.float32:
        real = np.asarray(pred, np.float32)
    else:
        scale, zp = np.float32(quant[0]), int(quant[1])
        real = (np.asarray(pred).astype(np.int64) - zp).astype(np.float32) * scale
    want = []
    for r in range(real.shape[0]):
        if len(want) == n:
            break
        if not real[r, 4] > np.float32(conf):
            continue
        x = float(real[r, 5])
        cls = int(np.sign(x) * np.floor(abs(x) + 0.5))  # C's lround: halves away from zero
        if allowed is not None and not np.asarray(allowed)[cls]:
            continue
        want.append(r)
    assert len(want) == n, (want, n)
    np.testing.assert_array_equal(scores, real[want, 4])
    np.testing.assert_array_equal(coeffs, real[want, 6:].reshape(n, nm))
    scale = np.array([box_scale[0], box_scale[1]] * 2, np.float32)
    np.testing.assert_array_equal(boxes, (real[want, :4] * scale).reshape(n, 4))


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
