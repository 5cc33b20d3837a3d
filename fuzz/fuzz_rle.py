#!/usr/bin/env python3
"""Fuzz ``_core.rle_encode`` (bit-packed box crops -> COCO compact RLE strings).

Crops are built either consistently (random rects inside the image, packed with numpy) or from raw
fuzz data (offsets, rects and image sizes anywhere in their integer ranges, wrong dtypes and layouts).
A call must raise ValueError or return one ``bytes`` string per crop whose counts (decoded with
Python ints, so nothing wraps) start with a run of zeros, alternate, cover exactly H x W pixels and
reproduce the crop's pixels; for small images pycocotools decodes the string to the same mask.

    python fuzz/fuzz_rle.py fuzz/corpus/rle -max_total_time=60
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
from pycocotools import mask as mask_utils

from edgeseg import _core


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """One rle_encode call built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    if fuzzlib.rarely(fdp, 4):
        raw_call(fdp)
        return
    h, w = fdp.ConsumeIntInRange(1, 64), fdp.ConsumeIntInRange(1, 64)
    n = fdp.ConsumeIntInRange(0, 6)
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
    rects, crops = [], []
    for _ in range(n):
        x0, y0 = fdp.ConsumeIntInRange(0, w), fdp.ConsumeIntInRange(0, h)
        cw, ch = fdp.ConsumeIntInRange(0, w - x0), fdp.ConsumeIntInRange(0, h - y0)
        density = fuzzlib.pick(fdp, (0.5, 0.0, 1.0, 0.05, 0.95))
        rects.append((x0, y0, cw, ch))
        crops.append(np.less(rng.random((ch, cw)), density))  # a function, not `<`: see fuzzcheck
    rects_a = np.array(rects, np.int32).reshape(-1, 4)
    packed = [np.packbits(c, axis=1, bitorder="little").ravel() for c in crops]
    offsets = np.concatenate([[0], np.cumsum([p.size for p in packed])]).astype(np.int64)
    bits = np.concatenate(packed) if packed else np.zeros(0, np.uint8)
    bits = fuzzlib.layout_array(fdp, bits, bits.shape, keep_values=True)
    offsets = fuzzlib.layout_array(fdp, offsets, offsets.shape, keep_values=True)
    rects_a = fuzzlib.layout_array(fdp, rects_a.reshape(-1), rects_a.shape, keep_values=True)
    image_hw = (h, w)
    if fuzzlib.rarely(fdp, 8):  # a taller/wider image than the crops need: still valid
        image_hw = (h + fuzzlib.fuzz_int(fdp, 0, 100), w + fuzzlib.fuzz_int(fdp, 0, 100))
    if fuzzlib.known("F3", image_hw[0] * image_hw[1] >= 2**63):
        return
    fuzzlib.debug("rle_encode", bits=bits, offsets=offsets, rects=rects_a, image_hw=image_hw)
    out = fuzzlib.value_error_or(lambda: _core.rle_encode(bits, offsets, rects_a, image_hw))
    if image_hw[0] >= h and image_hw[1] >= w and image_hw[0] * image_hw[1] < 2**32:
        assert out is not None, "valid crops rejected"
    if out is None:
        return
    check(out, rects_a, crops, image_hw)


def raw_call(fdp: atheris.FuzzedDataProvider) -> None:
    """rle_encode on arbitrary arrays: only ValueError or well-formed strings."""
    n = fuzzlib.fuzz_dim(fdp, 8)
    bits = fuzzlib.fuzz_array(fdp, (np.uint8,), (fuzzlib.fuzz_dim(fdp, 200),))
    offsets = fuzzlib.fuzz_array(fdp, (np.int64,), (n if fuzzlib.rarely(fdp, 8) else n + 1,))
    rects = fuzzlib.fuzz_array(fdp, (np.int32,), (n, 4))
    if isinstance(rects, np.ndarray) and rects.dtype == np.int32 and fdp.ConsumeBool():
        rects = np.array(rects) % 40
    image_hw = (fuzzlib.fuzz_int(fdp, -1, 50), fuzzlib.fuzz_int(fdp, -1, 50))
    if fuzzlib.known("F3", image_hw[0] * image_hw[1] >= 2**63):
        return
    fuzzlib.debug("rle_encode", bits=bits, offsets=offsets, rects=rects, image_hw=image_hw)
    out = fuzzlib.value_error_or(lambda: _core.rle_encode(bits, offsets, rects, image_hw))
    if out is None:
        return
    r = np.asarray(rects, np.int64).reshape(-1, 4)
    b = np.asarray(bits)
    o = np.asarray(offsets)
    crops = []
    for i in range(len(r)):
        cw, ch = r[i, 2:]
        packed = b[o[i] : o[i + 1]].reshape(ch, (cw + 7) // 8)
        crops.append(np.unpackbits(packed, axis=1, count=cw, bitorder="little").astype(bool))
    check(out, r, crops, image_hw)


def check(out: list, rects: np.ndarray, crops: list[np.ndarray], image_hw: tuple[int, int]) -> None:
    """Every string decodes to its crop placed in the image."""
    assert isinstance(out, list) and len(out) == len(crops)
    h, w = image_hw
    assert not out or h * w < 2**32, "an image too large for 32-bit counts was accepted"
    r = np.asarray(rects, np.int64).reshape(-1, 4)
    for i, s in enumerate(out):
        assert isinstance(s, bytes) and all(48 <= c < 48 + 64 for c in s), s
        counts = fuzzcheck.decode_rle_string(s)
        assert all(c >= 0 for c in counts) and all(c > 0 for c in counts[1:-1]), counts
        assert sum(counts) == h * w, (sum(counts), h * w)
        x0, y0, cw, ch = (int(v) for v in r[i])
        crop = crops[i]
        assert sum(counts[1::2]) == int(crop.sum())
        if h * w <= 1 << 16:
            dense = np.zeros((h, w), np.uint8)
            dense[y0 : y0 + ch, x0 : x0 + cw] = crop
            got = mask_utils.decode({"size": [h, w], "counts": s})
            assert np.array_equal(got, dense), "pycocotools decodes a different mask"
            assert int(mask_utils.area({"size": [h, w], "counts": s})) == int(crop.sum())


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
