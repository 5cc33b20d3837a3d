#!/usr/bin/env python3
"""Fuzz ``_core.assemble_masks`` (prototypes x coefficients -> box-cropped bit-packed masks).

Prototypes are (C, h, w) float32/int8/uint8 in any layout (channels-last through a transposed view,
broadcast, unaligned, reversed), with extreme quantizations; coefficients and boxes with NaN, inf and
huge values; input and image sizes from valid to absurd. A call must raise ValueError or return
masks that are well formed: kept indices increasing, each crop exactly the pixels ``ceil(x1) <= x <
ceil(x2)`` of its box clipped to the image, offsets matching the packed sizes, zero padding bits,
areas equal to the set bits (none empty when ``drop_empty``), soft probabilities in [0, 1] agreeing
with the bits, and RLE of every crop decoding to the same pixels.

    python fuzz/fuzz_masks.py fuzz/corpus/masks -max_total_time=60
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fuzzlib"]):
    import fuzzlib

import fuzzcheck
import numpy as np

from edgeseg import _core

MAX_IMAGE = 700  # image sides in the normal range (huge ones: see the F4 note below)


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """One assemble_masks call built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    c = fdp.ConsumeIntInRange(0, 8)
    ph, pw = fuzzlib.fuzz_dim(fdp, 40), fuzzlib.fuzz_dim(fdp, 40)
    huge_protos = fuzzlib.rarely(fdp, 32)
    if huge_protos:  # a logically huge (zero-stride) prototype array costs nothing to make
        ph, pw = fuzzlib.pick(fdp, ((1, 2**31), (2**31, 1), (3, 2**30), (1, 2**31 - 1), (2**20, 2**20)))
        protos = np.broadcast_to(np.float32(fuzzlib.fuzz_float(fdp)), (max(c, 1), ph, pw))
    else:
        nhwc = fdp.ConsumeBool()
        shape = (ph, pw, c) if nhwc else (c, ph, pw)
        protos = fuzzlib.fuzz_array(fdp, (np.float32, np.int8, np.uint8), shape)
        if nhwc and isinstance(protos, np.ndarray) and protos.ndim == 3:
            protos = protos.transpose(2, 0, 1)  # channels-last, as the head passes NHWC outputs
    n = fuzzlib.fuzz_dim(fdp, 16)
    nc = protos.shape[0] if isinstance(protos, np.ndarray) and protos.ndim == 3 else c
    coeffs = fuzzlib.fuzz_array(fdp, (np.float32,), (n, nc + 1 if fuzzlib.rarely(fdp, 16) else nc))
    stride = fuzzlib.pick(fdp, (1, 2, 4, 4, 4, 8, 3))
    input_hw = (ph * stride, pw * stride)
    if fuzzlib.rarely(fdp, 8):
        input_hw = (fuzzlib.fuzz_int(fdp, -1, 400), fuzzlib.fuzz_int(fdp, -1, 400))
    image_hw = (fuzzlib.fuzz_int(fdp, 0, MAX_IMAGE), fuzzlib.fuzz_int(fdp, 0, MAX_IMAGE))
    boxes = fuzzlib.fuzz_array(fdp, (np.float32,), (n, 4))
    if isinstance(boxes, np.ndarray) and boxes.dtype == np.float32 and boxes.ndim == 2 and fdp.ConsumeBool():
        # mostly boxes in (and a little around) the image, so masks get rendered
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        h, w = (max(min(int(v), MAX_IMAGE), 1) for v in image_hw)
        xy = rng.uniform(-2, 1, (n, 2)) * [w, h]
        wh = rng.uniform(0, 1.2, (n, 2)) * [w, h]
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    soft, drop_empty = fdp.ConsumeBool(), fdp.ConsumeBool()
    dtype = protos.dtype if isinstance(protos, np.ndarray) else np.float32
    quant = fuzzlib.fuzz_quant(fdp, dtype)

    if fuzzlib.known("F2", huge_protos and max(ph, pw) >= 2**31):
        return
    if fuzzlib.known("F9", huge_protos and max(ph, pw) >= 2**20):
        return
    if 2**16 < max(image_hw) < 2**31:
        # Not a finding: since F4's fix the resampling plans follow the boxes' span, and boxes spanning a
        # side of millions of pixels legitimately need memory in proportion (the F4 test guards small
        # boxes on such images).
        return
    if fuzzlib.known("F8", fuzzlib.malformed_quant(quant)):
        return

    fuzzlib.debug(
        "assemble_masks",
        protos=protos,
        coeffs=coeffs,
        boxes=boxes,
        input_hw=input_hw,
        image_hw=image_hw,
        soft=soft,
        drop_empty=drop_empty,
        quant=quant,
    )
    out = fuzzlib.value_error_or(
        lambda: _core.assemble_masks(protos, coeffs, boxes, input_hw, image_hw, soft, drop_empty, quant)
    )
    if out is None:
        return
    check(out, np.asarray(boxes, np.float32), image_hw, soft, drop_empty)


def check(out, boxes: np.ndarray, image_hw: tuple[int, int], soft: bool, drop_empty: bool) -> None:
    """The masks are well formed (see the module doc)."""
    assert isinstance(out, tuple) and len(out) == 6
    keep, rects, offsets, bits, probs, areas = out
    k = len(keep)
    fuzzlib.bucket(k)
    fuzzcheck.check_array(keep, np.int64, (k,))
    fuzzcheck.check_array(rects, np.int32, (k, 4))
    fuzzcheck.check_array(offsets, np.int64, (k + 1,))
    fuzzcheck.check_array(bits, np.uint8, (None,))
    fuzzcheck.check_array(areas, np.int64, (k,))
    n = len(boxes)
    assert (np.diff(keep) > 0).all() and (k == 0 or (keep[0] >= 0 and keep[-1] < n))
    if not drop_empty:
        assert k == n, "drop_empty=False dropped a mask"
    h, w = image_hw
    r = rects.astype(np.int64)
    assert (r >= 0).all() and (r[:, 0] + r[:, 2] <= w).all() and (r[:, 1] + r[:, 3] <= h).all(), rects
    sizes = (r[:, 2] + 7) // 8 * r[:, 3]
    assert offsets[0] == 0 and np.array_equal(np.diff(offsets), sizes) and offsets[-1] == bits.size
    if soft:
        fuzzcheck.check_array(probs, np.float32, (int((r[:, 2] * r[:, 3]).sum()),))
        assert ((probs >= 0) & (probs <= 1)).all(), "probability outside [0, 1]"
    else:
        assert probs is None
    prob_start = 0
    for j in range(k):
        b = boxes[keep[j]]
        x0, y0, cw, ch = (int(v) for v in r[j])
        edge = [min(max(math.ceil(float(v)), 0), lim) for v, lim in zip(b, (w, h, w, h))]
        assert (x0, y0, cw, ch) == (edge[0], edge[1], max(edge[2] - edge[0], 0), max(edge[3] - edge[1], 0)), (
            "crop is not the box's pixels",
            b.tolist(),
            rects[j].tolist(),
        )
        packed = bits[offsets[j] : offsets[j + 1]].reshape(ch, (cw + 7) // 8)
        crop = np.unpackbits(packed, axis=1, bitorder="little")
        assert not crop[:, cw:].any(), "padding bits set"
        crop = crop[:, :cw]
        assert int(crop.sum()) == int(areas[j]), "area is not the pixel count"
        if drop_empty:
            assert areas[j] > 0, "empty mask kept with drop_empty"
        if soft:
            p = probs[prob_start : prob_start + cw * ch].reshape(ch, cw)
            prob_start += cw * ch
            assert (p[crop == 1] >= 0.5).all() and (p[crop == 0] <= 0.5).all(), "probabilities disagree with bits"
    if k and h * w <= 1 << 22:  # the crops are valid RLE input: decode and compare pixel counts
        rles = _core.rle_encode(bits, offsets, rects, (h, w))
        for j, s in enumerate(rles):
            counts = fuzzcheck.decode_rle_string(s)
            assert sum(counts) == h * w and sum(counts[1::2]) == int(areas[j]), "RLE of a mask is off"


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
