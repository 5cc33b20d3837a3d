#!/usr/bin/env python3
"""Fuzz the letterbox geometry: ``_core.make_letterbox`` and ``_core.unletterbox_boxes``.

make_letterbox must raise ValueError or give a resized image that fits the input with non-negative
padding, keeps the aspect ratio to within rounding (except ``stretch``), and (for sizes where Python's
floats are exact) matches its reference formula: Ultralytics' centred letterbox, mmcv's keep-ratio
rescale (top-left), or a plain resize filling the input. unletterbox_boxes must raise ValueError or return
(N, 4) float32 boxes inside the source image; a box mapped into the input and back stays within a
rounding error of where it was.

    python fuzz/fuzz_letterbox.py fuzz/corpus/letterbox -max_total_time=60
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
    """One make_letterbox call, and unletterbox_boxes on its result."""
    fdp = atheris.FuzzedDataProvider(data)
    sizes = [fuzzlib.fuzz_int(fdp, -2, 5000) for _ in range(4)]
    if fuzzlib.known("F7", max(sizes[2:]) > 2**52):
        return
    resize = RESIZE_MODES[fdp.ConsumeIntInRange(0, len(RESIZE_MODES) - 1)]
    lb = fuzzlib.value_error_or(lambda: _core.make_letterbox(*sizes, resize))
    if lb is None:
        return
    {"letterbox": check_letterbox, "keep_ratio": check_keep_ratio, "stretch": check_stretch}[resize](lb, sizes)

    n = fuzzlib.fuzz_dim(fdp, 50)
    boxes = fuzzlib.fuzz_array(fdp, (np.float32,), (n, 5 if fuzzlib.rarely(fdp, 16) else 4))
    if isinstance(boxes, np.ndarray) and fuzzlib.known("F5", boxes.dtype == np.float32 and bool(np.isnan(boxes).any())):
        return
    out = fuzzlib.value_error_or(lambda: _core.unletterbox_boxes(boxes, lb))
    if out is not None:
        check_boxes(out, n, sizes[0], sizes[1])
    if max(sizes) < 2**20:
        check_round_trip(lb, fdp.ConsumeIntInRange(0, 2**32 - 1))


# The checks are not instrumented (array comparisons in instrumented code leak: see fuzzcheck).

RESIZE_MODES = ("letterbox", "keep_ratio", "stretch")


def check_keep_ratio(lb: _core.Letterbox, sizes: list[int]) -> None:
    """Aspect kept, top-left, no padding before the image; sizes by mmcv's int(side * scale + 0.5)."""
    src_h, src_w, dst_h, dst_w = sizes
    assert (lb.src_h, lb.src_w, lb.dst_h, lb.dst_w, lb.resize) == (src_h, src_w, dst_h, dst_w, "keep_ratio")
    assert (lb.pad_top, lb.pad_left) == (0, 0), lb
    assert 1 <= lb.new_h <= dst_h and 1 <= lb.new_w <= dst_w, lb
    r = min(dst_h / src_h, dst_w / src_w)
    if max(sizes) < 2**31:
        want = (min(max(int(src_h * r + 0.5), 1), dst_h), min(max(int(src_w * r + 0.5), 1), dst_w))
        assert (lb.new_h, lb.new_w) == want, (lb, want)


def check_stretch(lb: _core.Letterbox, sizes: list[int]) -> None:
    """The image fills the input."""
    src_h, src_w, dst_h, dst_w = sizes
    assert (lb.src_h, lb.src_w, lb.resize) == (src_h, src_w, "stretch")
    assert (lb.new_h, lb.new_w, lb.pad_top, lb.pad_left) == (dst_h, dst_w, 0, 0), lb


def check_letterbox(lb: _core.Letterbox, sizes: list[int]) -> None:
    """The resized image fits the input, centred, with the Ultralytics rounding."""
    src_h, src_w, dst_h, dst_w = sizes
    assert (lb.src_h, lb.src_w, lb.dst_h, lb.dst_w, lb.resize) == (src_h, src_w, dst_h, dst_w, "letterbox")
    assert 1 <= lb.new_h <= max(dst_h, 1) and 1 <= lb.new_w <= max(dst_w, 1), lb
    assert lb.pad_top >= 0 and lb.pad_left >= 0, lb
    assert lb.pad_top + lb.new_h <= dst_h and lb.pad_left + lb.new_w <= dst_w, lb
    # padding split evenly (the first side gets the smaller half, within one pixel)
    assert abs((dst_h - lb.new_h - lb.pad_top) - lb.pad_top) <= 1, lb
    assert abs((dst_w - lb.new_w - lb.pad_left) - lb.pad_left) <= 1, lb
    # the resized image fills the input along one side: its size is the scaled source size, rounded
    r = min(dst_h / src_h, dst_w / src_w)
    for new, src in ((lb.new_h, src_h), (lb.new_w, src_w)):
        want = max(src * r, 1.0)
        assert abs(new - want) <= 1.0 + want * 1e-12, ("resized size off", lb, want)
    if max(sizes) < 2**31:
        new_w, new_h = max(round(src_w * r), 1), max(round(src_h * r), 1)
        assert (lb.new_h, lb.new_w) == (new_h, new_w), (lb, new_h, new_w)
        assert lb.pad_top == round((dst_h - new_h) / 2 - 0.1) and lb.pad_left == round((dst_w - new_w) / 2 - 0.1)


def check_boxes(out: np.ndarray, n: int, src_h: int, src_w: int) -> None:
    """Unletterboxed boxes: (n, 4) float32 inside the source image."""
    fuzzcheck.check_array(out, np.float32, (n, 4))
    assert not np.isnan(out).any(), "NaN box out of unletterbox_boxes"
    assert (out[:, [0, 2]] >= 0).all() and (out[:, [0, 2]] <= np.float32(src_w)).all()
    assert (out[:, [1, 3]] >= 0).all() and (out[:, [1, 3]] <= np.float32(src_h)).all()


def check_round_trip(lb: _core.Letterbox, seed: int) -> None:
    """Source boxes -> input pixels -> source boxes: back where they were, within float rounding."""
    rng = np.random.default_rng(seed)
    src_w, src_h = lb.src_w, lb.src_h
    xy = rng.uniform(0, 1, (8, 4)) * np.array([src_w, src_h, src_w, src_h])
    gx, gy = lb.new_w / src_w, lb.new_h / src_h
    into = (xy * np.array([gx, gy, gx, gy]) + np.array([lb.pad_left, lb.pad_top] * 2)).astype(np.float32)
    back = _core.unletterbox_boxes(into, lb).astype(np.float64)
    # float32 rounding in the input space, magnified by 1/gain
    tol = (np.abs(into).max() * 2.0**-22 + 1e-3) / min(gx, gy)
    assert np.abs(back - xy).max() <= tol, (np.abs(back - xy).max(), tol, lb)


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
