"""The C++ core's letterbox geometry and box-cropped masks against numpy references.

The mask reference is the dense retina-mask algorithm spelled out in csrc/src/masks.cpp: full
prototype-resolution logits, a PyTorch-style bilinear upsampling by a factor f that puts the
letterbox padding on whole pixels, the padding cut away, a bilinear resize to the image size,
the sign test, and everything outside the box zeroed.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from edgeseg import InstanceMasks, _core

# ----------------------------------------------------------------------------------------------
# numpy references


def ref_letterbox(src_h: int, src_w: int, dst_h: int, dst_w: int) -> dict[str, int]:
    r = min(dst_h / src_h, dst_w / src_w)
    new_w = max(round(src_w * r), 1)
    new_h = max(round(src_h * r), 1)
    return {
        "new_h": new_h,
        "new_w": new_w,
        "pad_top": round((dst_h - new_h) / 2 - 0.1),
        "pad_left": round((dst_w - new_w) / 2 - 0.1),
    }


def torch_linear_axis(in_len: int, out_len: int, scale: np.float32):
    """Source indices and weights of PyTorch's bilinear resize (align_corners=False), in float32."""
    o = np.arange(out_len, dtype=np.float32)
    src = np.float32(scale) * (o + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(src.astype(np.int64), in_len - 1)
    i1 = i0 + (i0 < in_len - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
    return i0, i1, w1


def resize_axis(a: np.ndarray, axis: int, out_len: int, scale: np.float32) -> np.ndarray:
    i0, i1, w1 = torch_linear_axis(a.shape[axis], out_len, scale)
    shape = [1] * a.ndim
    shape[axis] = out_len
    w1 = w1.reshape(shape)
    return (np.float32(1) - w1) * np.take(a, i0, axis) + w1 * np.take(a, i1, axis)


def ref_geometry(ph: int, pw: int, input_hw: tuple[int, int], image_hw: tuple[int, int]):
    """Factor f and the content window [top, bottom) x [left, right) in f-times upsampled protos.

    f is the smallest divisor of the prototype stride that puts every letterbox padding edge on
    a whole pixel of the upsampled prototypes.
    """
    stride = input_hw[0] // ph
    lb = ref_letterbox(*image_hw, *input_hw)
    pads = [
        lb["pad_top"],
        input_hw[0] - lb["pad_top"] - lb["new_h"],
        lb["pad_left"],
        input_hw[1] - lb["pad_left"] - lb["new_w"],
    ]
    f = next(f for f in range(1, stride + 1) if stride % f == 0 and all(p * f % stride == 0 for p in pads))
    top, bottom_pad, left, right_pad = (p * f // stride for p in pads)
    return f, top, f * ph - bottom_pad, left, f * pw - right_pad


def ref_logits(protos, coeffs, input_hw, image_hw) -> np.ndarray:
    """(N, H, W) float32 logits at image resolution, before the box crop."""
    _c, ph, pw = protos.shape
    f, top, bottom, left, right = ref_geometry(ph, pw, input_hw, image_hw)
    lg = np.einsum("nc,chw->nhw", coeffs.astype(np.float64), protos.astype(np.float64)).astype(np.float32)
    if f > 1:
        inv = np.float32(1) / np.float32(f)
        lg = resize_axis(resize_axis(lg, 1, f * ph, inv), 2, f * pw, inv)
    lg = lg[:, top:bottom, left:right]
    h, w = image_hw
    sy = np.float32(lg.shape[1]) / np.float32(h)
    sx = np.float32(lg.shape[2]) / np.float32(w)
    return resize_axis(resize_axis(lg, 1, h, sy), 2, w, sx)


def box_window(box: np.ndarray, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixels (c, r) with x1 <= c < x2 and y1 <= r < y2, as x0, y0, width, height."""
    h, w = image_hw
    cols = np.nonzero((np.arange(w) >= box[0]) & (np.arange(w) < box[2]))[0]
    rows = np.nonzero((np.arange(h) >= box[1]) & (np.arange(h) < box[3]))[0]
    if len(cols) == 0 or len(rows) == 0:
        return 0, 0, 0, 0
    return int(cols[0]), int(rows[0]), len(cols), len(rows)


def box_region(box: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    h, w = image_hw
    cols = (np.arange(w) >= box[0]) & (np.arange(w) < box[2])
    rows = (np.arange(h) >= box[1]) & (np.arange(h) < box[3])
    return rows[:, None] & cols[None, :]


# ----------------------------------------------------------------------------------------------
# helpers


def seed_of(*args) -> int:
    return zlib.crc32(repr(args).encode())


def random_protos(rng: np.random.Generator, c: int, ph: int, pw: int) -> np.ndarray:
    # Mildly smooth prototypes (as real ones are) with random signs.
    p = rng.normal(0, 1, (c, ph + 2, pw + 2)).astype(np.float32)
    p = (p[:, :-2, :-2] + p[:, 1:-1, 1:-1] + p[:, 2:, 2:] + p[:, 1:-1, :-2]) / 2
    return np.ascontiguousarray(p, dtype=np.float32)


def random_boxes(rng: np.random.Generator, n: int, image_hw: tuple[int, int]) -> np.ndarray:
    h, w = image_hw
    x = np.sort(rng.uniform(0, w, (n, 2)), 1)
    y = np.sort(rng.uniform(0, h, (n, 2)), 1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1).astype(np.float32)


def assemble(protos, coeffs, boxes, input_hw, image_hw, soft=False, drop_empty=True):
    out = _core.assemble_masks(protos, coeffs, boxes, input_hw, image_hw, soft, drop_empty)
    keep, rects, offsets, bits, probs, areas = out
    assert keep.dtype == np.int64 and rects.dtype == np.int32 and areas.dtype == np.int64
    assert offsets.dtype == np.int64 and bits.dtype == np.uint8
    assert rects.shape == (len(keep), 4) and offsets.shape == (len(keep) + 1,) and areas.shape == keep.shape
    assert offsets[0] == 0 and offsets[-1] == len(bits)
    # Bit-packed rows: ceil(width / 8) bytes per row.
    np.testing.assert_array_equal(np.diff(offsets), (rects[:, 2].astype(np.int64) + 7) // 8 * rects[:, 3])
    masks = InstanceMasks(rects, offsets, bits, image_hw)
    np.testing.assert_array_equal(areas, [int(m.sum()) for m in masks])
    for i, (_, _, w, h) in enumerate(rects.tolist()):  # padding bits past the width stay zero
        row_bytes = (w + 7) // 8
        if w % 8 and h:
            last = bits[offsets[i] : offsets[i + 1]].reshape(h, row_bytes)[:, -1]
            assert not np.any(last >> (w % 8))
    if soft:
        assert probs.dtype == np.float32 and probs.shape == (int((rects[:, 2].astype(np.int64) * rects[:, 3]).sum()),)
    else:
        assert probs is None
    return out


def check_masks(protos, coeffs, boxes, input_hw, image_hw, *, drop_empty=True, soft=False, eps=1e-3):
    """Compares the core with the dense reference; returns the reference areas."""
    keep, rects, offsets, bits, probs, _ = assemble(protos, coeffs, boxes, input_hw, image_hw, soft, drop_empty)
    dense = InstanceMasks(rects, offsets, bits, image_hw).dense()
    ref_areas = []
    for i, box in enumerate(boxes):
        region = box_region(box, image_hw)
        lg = ref_logits(protos, coeffs[i : i + 1], input_hw, image_hw)[0]
        ref = (lg > 0) & region
        ref_areas.append(int(ref.sum()))
        if i not in keep.tolist():
            # Dropped: only where the reference mask is empty (up to rounding at logit 0).
            assert drop_empty
            assert np.all(np.abs(lg[ref]) < eps), (i, ref.sum())
            continue
        j = keep.tolist().index(i)
        want_rect = box_window(box, image_hw)
        if want_rect[2] * want_rect[3] == 0:
            x0, y0, w, h = rects[j].tolist()
            assert w * h == 0 and 0 <= x0 <= x0 + w <= image_hw[1] and 0 <= y0 <= y0 + h <= image_hw[0]
        else:
            assert tuple(rects[j].tolist()) == want_rect, (i, box)
        got = dense[j]
        diff = got != ref
        # Disagreement only at logits within rounding of 0, and at most 0.1% of the pixels.
        assert np.all(np.abs(lg[diff]) < eps), (i, np.abs(lg[diff]).max())
        assert diff.sum() <= max(1, 0.001 * max(region.sum(), 1)), (i, diff.sum())
        if soft:
            x0, y0, w, h = rects[j].tolist()
            sig = 1 / (1 + np.exp(-lg[y0 : y0 + h, x0 : x0 + w].astype(np.float64)))
            soft_crop = InstanceMasks(rects, offsets, bits, image_hw, probs).soft(j)
            np.testing.assert_allclose(soft_crop, sig, atol=1e-4, rtol=0)
    if not drop_empty:
        assert keep.tolist() == list(range(len(boxes)))
    return ref_areas


PROTO_SETUPS = [
    ((640, 640), (160, 160)),
    ((320, 320), (80, 80)),
    ((384, 640), (96, 160)),
]


# ----------------------------------------------------------------------------------------------
# letterbox


def test_make_letterbox_matches_python() -> None:
    rng = np.random.default_rng(0)
    sizes = [(1, 1), (3, 5), (427, 640), (640, 427), (1080, 1920), (853, 1280), (1280, 853), (4000, 3000)]
    sizes += [(1, 10000), (10000, 1), (640, 640), (320, 640)]
    sizes += [tuple(int(v) for v in rng.integers(1, 5000, 2)) for _ in range(300)]
    inputs = [(640, 640), (320, 320), (384, 640), (640, 384), (736, 1280), (32, 32)]
    for src_h, src_w in sizes:
        for dst_h, dst_w in inputs:
            lb = _core.make_letterbox(src_h, src_w, dst_h, dst_w)
            want = ref_letterbox(src_h, src_w, dst_h, dst_w)
            got = {k: getattr(lb, k) for k in want}
            assert got == want, (src_h, src_w, dst_h, dst_w)
            assert (lb.src_h, lb.src_w, lb.dst_h, lb.dst_w) == (src_h, src_w, dst_h, dst_w)
            assert lb.pad_top >= 0 and lb.pad_top + lb.new_h <= dst_h
            assert lb.pad_left >= 0 and lb.pad_left + lb.new_w <= dst_w


def test_make_letterbox_round_half_even() -> None:
    # 1280x853 into 640: 426.5 rows -> 426 (Python's round), padding 214 -> 107 above.
    lb = _core.make_letterbox(853, 1280, 640, 640)
    assert (lb.new_h, lb.new_w, lb.pad_top, lb.pad_left) == (426, 640, 107, 0)
    # 2.5 -> 2, 3.5 -> 4.
    lb = _core.make_letterbox(5, 2, 5, 1)
    assert (lb.new_h, lb.new_w) == (2, 1)
    lb = _core.make_letterbox(7, 2, 7, 1)
    assert (lb.new_h, lb.new_w) == (4, 1)
    # Odd padding: one less before than after.
    lb = _core.make_letterbox(427, 640, 640, 640)
    assert (lb.new_h, lb.pad_top) == (427, 106)


def test_make_letterbox_invalid() -> None:
    for args in [(0, 10, 640, 640), (10, -1, 640, 640), (10, 10, 0, 640), (10, 10, 640, -5)]:
        with pytest.raises(ValueError):
            _core.make_letterbox(*args)


@pytest.mark.parametrize("src_hw", [(427, 640), (640, 427), (1080, 1920), (853, 1280), (3, 5), (1, 1)])
@pytest.mark.parametrize("dst_hw", [(640, 640), (384, 640)])
def test_unletterbox_boxes_matches_numpy(src_hw, dst_hw) -> None:
    rng = np.random.default_rng(sum(src_hw) + sum(dst_hw))
    lb = _core.make_letterbox(*src_hw, *dst_hw)
    boxes = rng.uniform(-50, max(dst_hw) + 50, (200, 4)).astype(np.float32)
    got = _core.unletterbox_boxes(boxes, lb)
    assert got.dtype == np.float32 and got.shape == boxes.shape
    gx = np.float32(lb.new_w / lb.src_w)
    gy = np.float32(lb.new_h / lb.src_h)
    x = np.clip((boxes[:, 0::2] - np.float32(lb.pad_left)) / gx, 0, src_hw[1])
    y = np.clip((boxes[:, 1::2] - np.float32(lb.pad_top)) / gy, 0, src_hw[0])
    np.testing.assert_allclose(got[:, 0::2], x, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got[:, 1::2], y, rtol=1e-6, atol=1e-5)
    assert np.all(got >= 0)
    assert np.all(got[:, 0::2] <= src_hw[1]) and np.all(got[:, 1::2] <= src_hw[0])
    # The input is left alone; non-contiguous input works.
    wide = np.zeros((200, 8), np.float32)
    wide[:, ::2] = boxes
    np.testing.assert_array_equal(_core.unletterbox_boxes(wide[:, ::2], lb), got)
    # The image corners map back onto the image corners.
    corners = np.array([[lb.pad_left, lb.pad_top, lb.pad_left + lb.new_w, lb.pad_top + lb.new_h]], np.float32)
    np.testing.assert_allclose(_core.unletterbox_boxes(corners, lb), [[0, 0, src_hw[1], src_hw[0]]], atol=1e-3)


def test_unletterbox_boxes_invalid() -> None:
    lb = _core.make_letterbox(480, 640, 640, 640)
    with pytest.raises(ValueError):
        _core.unletterbox_boxes(np.zeros((2, 4), np.float64), lb)
    with pytest.raises(ValueError):
        _core.unletterbox_boxes(np.zeros((2, 5), np.float32), lb)
    with pytest.raises(ValueError):
        _core.unletterbox_boxes(np.zeros(4, np.float32), lb)
    assert _core.unletterbox_boxes(np.zeros((0, 4), np.float32), lb).shape == (0, 4)


# ----------------------------------------------------------------------------------------------
# masks


@pytest.mark.parametrize("input_hw,proto_hw", PROTO_SETUPS)
@pytest.mark.parametrize("image_hw", [(427, 640), (640, 427), (1080, 1920), (480, 640), (853, 1280), (500, 333)])
def test_masks_match_reference(input_hw, proto_hw, image_hw) -> None:
    rng = np.random.default_rng(seed_of(input_hw, proto_hw, image_hw))
    c = 32
    protos = random_protos(rng, c, *proto_hw)
    n = 6
    coeffs = (rng.normal(0, 1, (n, c)) / math.sqrt(c)).astype(np.float32)
    coeffs[:, 0] += np.float32(0.3)  # some masks mostly on, some mostly off
    h, w = image_hw
    boxes = random_boxes(rng, n - 2, image_hw)
    # Touching the borders, and overhanging them.
    extra = np.array([[0, 0, w, h], [-20.5, h * 0.5, w * 0.3, h + 40]], np.float32)
    boxes = np.concatenate([boxes, extra]).astype(np.float32)
    areas = check_masks(protos, coeffs, boxes, input_hw, image_hw)
    assert sum(a > 0 for a in areas) >= 3
    check_masks(protos, coeffs, boxes, input_hw, image_hw, drop_empty=False)


@pytest.mark.parametrize("input_hw,proto_hw", [*PROTO_SETUPS, ((640, 640), (80, 80)), ((640, 640), (320, 320))])
@pytest.mark.parametrize("image_hw", [(1, 1), (3, 5), (5, 3), (1, 1000), (1000, 1), (2, 2), (641, 641)])
def test_masks_tiny_and_thin_images(input_hw, proto_hw, image_hw) -> None:
    rng = np.random.default_rng(seed_of(input_hw, proto_hw, image_hw))
    c = 8
    protos = random_protos(rng, c, *proto_hw)
    coeffs = rng.normal(0, 1, (4, c)).astype(np.float32)
    h, w = image_hw
    boxes = np.array([[0, 0, w, h], [0, 0, 1, 1], [w - 1, h - 1, w, h], [-5, -5, w + 5, h + 5]], np.float32)
    check_masks(protos, coeffs, boxes, input_hw, image_hw, drop_empty=False)
    check_masks(protos, coeffs, boxes, input_hw, image_hw, soft=True)


def test_masks_huge_image() -> None:
    rng = np.random.default_rng(42)
    image_hw = (3000, 4000)
    protos = random_protos(rng, 32, 160, 160)
    coeffs = (rng.normal(0, 1, (3, 32)) / math.sqrt(32)).astype(np.float32)
    boxes = np.array([[0, 0, 4000, 3000], [1234.5, 100.2, 2500.7, 1900.9], [3999, 2999, 4000, 3000]], np.float32)
    areas = check_masks(protos, coeffs, boxes, (640, 640), image_hw, drop_empty=False)
    assert areas[0] > 1000 and areas[1] > 1000
    # Portrait too, on a rectangular input.
    protos = random_protos(rng, 32, 96, 160)
    boxes = np.array([[10.5, 20.5, 2990.5, 3980.5], [0, 3500, 3000, 4000]], np.float32)
    check_masks(protos, coeffs[:2], boxes, (384, 640), (4000, 3000), drop_empty=False)


def test_masks_one_pixel_boxes() -> None:
    rng = np.random.default_rng(8)
    image_hw = (427, 640)
    protos = random_protos(rng, 16, 160, 160)
    n = 40
    coeffs = rng.normal(0, 1, (n, 16)).astype(np.float32)
    xy = np.stack([rng.integers(0, 640, n), rng.integers(0, 427, n)], 1).astype(np.float32)
    # Integer 1x1 boxes, and fractional ones that still cover exactly one pixel.
    frac = np.float32(rng.uniform(0.01, 0.99))
    boxes = np.concatenate([xy, xy + 1], 1).astype(np.float32)
    boxes[n // 2 :] -= frac
    check_masks(protos, coeffs, boxes, (640, 640), image_hw, drop_empty=False)
    _keep, rects, *_ = assemble(protos, coeffs, boxes, (640, 640), image_hw, drop_empty=False)
    assert np.all(rects[:, 2:] == 1)
    check_masks(protos, coeffs, boxes, (640, 640), image_hw, soft=True)


def test_masks_zero_area_boxes() -> None:
    rng = np.random.default_rng(12)
    image_hw = (100, 120)
    protos = random_protos(rng, 4, 160, 160)
    coeffs = np.tile(np.float32([[5, 0, 0, 0]]), (7, 1))
    protos[0] = 1  # every logit positive: only the boxes make masks empty
    boxes = np.array(
        [
            [10, 10, 50, 50],  # regular
            [20, 20, 20, 60],  # zero width
            [20, 20, 60, 20],  # zero height
            [30.2, 30, 30.8, 40],  # no pixel column inside
            [60, 60, 40, 80],  # inverted
            [-10, -10, -1, -1],  # entirely outside
            [120, 100, 130, 110],  # outside, beyond the far corner
        ],
        np.float32,
    )
    keep, rects, offsets, bits, _, _ = assemble(protos, coeffs, boxes, (640, 640), image_hw)
    assert keep.tolist() == [0]
    assert rects.tolist() == [[10, 10, 40, 40]]
    assert InstanceMasks(rects, offsets, bits, image_hw)[0].all()
    keep, rects, offsets, bits, probs, _ = assemble(
        protos, coeffs, boxes, (640, 640), image_hw, soft=True, drop_empty=False
    )
    assert keep.tolist() == list(range(7))
    assert rects[1:, 2:].prod(1).tolist() == [0] * 6
    assert np.diff(offsets).tolist() == [5 * 40] + [0] * 6  # 40 pixels a row: 5 packed bytes
    assert len(probs) == 1600 and np.all(probs > 0.5)
    m = InstanceMasks(rects, offsets, bits, image_hw)
    assert m.areas().tolist() == [1600] + [0] * 6
    # No boxes at all.
    keep, rects, offsets, bits, probs, _ = assemble(
        protos, np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), (640, 640), image_hw, soft=True
    )
    assert len(keep) == 0 and rects.shape == (0, 4) and offsets.tolist() == [0] and len(bits) == 0


def test_masks_empty_masks_dropped() -> None:
    rng = np.random.default_rng(13)
    protos = random_protos(rng, 4, 160, 160)
    protos[0] = 1
    coeffs = np.float32([[1, 0, 0, 0], [-1, 0, 0, 0], [2, 0, 0, 0]])
    boxes = np.float32([[0, 0, 30, 30], [10, 10, 90, 90], [5, 5, 6, 6]])
    keep, rects, offsets, bits, _, _ = assemble(protos, coeffs, boxes, (640, 640), (100, 100))
    assert keep.tolist() == [0, 2]
    assert rects.tolist() == [[0, 0, 30, 30], [5, 5, 1, 1]]
    assert all(m.all() for m in InstanceMasks(rects, offsets, bits, (100, 100)))
    keep, rects, offsets, bits, _, _ = assemble(protos, coeffs, boxes, (640, 640), (100, 100), drop_empty=False)
    assert keep.tolist() == [0, 1, 2]
    assert InstanceMasks(rects, offsets, bits, (100, 100)).areas().tolist() == [900, 0, 1]


@pytest.mark.parametrize("input_hw,proto_hw", PROTO_SETUPS)
def test_soft_masks_are_sigmoid_of_logits(input_hw, proto_hw) -> None:
    rng = np.random.default_rng(sum(proto_hw))
    image_hw = (427, 640)
    protos = random_protos(rng, 32, *proto_hw)
    coeffs = (rng.normal(0, 1, (5, 32)) / math.sqrt(32)).astype(np.float32)
    boxes = random_boxes(rng, 5, image_hw)
    check_masks(protos, coeffs, boxes, input_hw, image_hw, soft=True, drop_empty=False)
    hard = assemble(protos, coeffs, boxes, input_hw, image_hw)
    soft = assemble(protos, coeffs, boxes, input_hw, image_hw, soft=True)
    for a, b in zip(hard[:4], soft[:4]):
        np.testing.assert_array_equal(a, b)
    # Bits are the sign of the logit; the probability can round to exactly 0.5 right at 0.
    masks = InstanceMasks(*soft[1:4], image_hw, soft[4])
    for i in range(len(masks)):
        p = masks.soft(i)
        differ = masks[i].astype(bool) != (p > 0.5)
        assert np.all(np.abs(p[differ] - 0.5) < 1e-6)


def test_masks_non_contiguous_protos() -> None:
    rng = np.random.default_rng(14)
    protos = random_protos(rng, 32, 96, 160)
    coeffs = (rng.normal(0, 1, (4, 32)) / math.sqrt(32)).astype(np.float32)
    boxes = random_boxes(rng, 4, (720, 1280))
    want = assemble(protos, coeffs, boxes, (384, 640), (720, 1280), drop_empty=False)
    hwc = np.ascontiguousarray(protos.transpose(1, 2, 0))
    got = assemble(hwc.transpose(2, 0, 1), coeffs, boxes, (384, 640), (720, 1280), drop_empty=False)
    for a, b in zip(want[:4], got[:4]):
        np.testing.assert_array_equal(a, b)
    check_masks(hwc.transpose(2, 0, 1), coeffs, boxes, (384, 640), (720, 1280), drop_empty=False)
    # Negative strides.
    flipped = protos[:, ::-1, ::-1]
    got = assemble(flipped, coeffs, boxes, (384, 640), (720, 1280), drop_empty=False)
    want = assemble(flipped.copy(), coeffs, boxes, (384, 640), (720, 1280), drop_empty=False)
    for a, b in zip(want[:4], got[:4]):
        np.testing.assert_array_equal(a, b)


def test_masks_invalid_arguments() -> None:
    protos = np.zeros((4, 160, 160), np.float32)
    coeffs = np.zeros((2, 4), np.float32)
    boxes = np.float32([[0, 0, 10, 10], [5, 5, 20, 20]])
    ok = (protos, coeffs, boxes, (640, 640), (100, 100))
    assemble(*ok, drop_empty=False)

    def bad(**kw):
        args = dict(zip(["protos", "coeffs", "boxes", "input_hw", "image_hw"], ok))
        args.update(kw)
        with pytest.raises(ValueError):
            _core.assemble_masks(*args.values())

    bad(protos=protos.astype(np.float64))
    bad(coeffs=coeffs.astype(np.float64))
    bad(boxes=boxes.astype(np.float64))
    bad(protos=protos[0])
    bad(protos=protos[None])
    bad(coeffs=coeffs[0])
    bad(boxes=boxes[:, :3].copy())
    bad(coeffs=np.zeros((2, 5), np.float32))  # coefficient count mismatch
    bad(coeffs=np.zeros((3, 4), np.float32))  # one row per box
    bad(boxes=np.float32([[0, 0, np.nan, 10], [5, 5, 20, 20]]))
    bad(boxes=np.float32([[0, 0, 10, 10], [5, 5, np.inf, 20]]))
    bad(input_hw=(640, 600))  # not a multiple of the prototypes
    bad(input_hw=(640, 1280))  # different strides
    bad(image_hw=(0, 100))
    bad(protos=np.zeros((0, 160, 160), np.float32), coeffs=np.zeros((2, 0), np.float32))
    nan_protos = protos.copy()
    nan_protos[:, 5, 5] = np.nan
    bad(protos=nan_protos, coeffs=np.ones((2, 4), np.float32))
    bad(coeffs=np.float32([[0, 0, 0, 0], [0, np.nan, 0, 0]]))


def test_masks_huge_finite_box_coordinates() -> None:
    protos = np.ones((1, 160, 160), np.float32)
    coeffs = np.ones((2, 1), np.float32)
    boxes = np.float32([[0, 0, 1e18, 1e18], [0, 0, 1e20, 1e20]])
    _keep, rects, *_ = assemble(protos, coeffs, boxes, (640, 640), (100, 100), drop_empty=False)
    assert rects[0].tolist() == [0, 0, 100, 100]  # fine
    assert rects[1].tolist() == [0, 0, 100, 100]  # got [0, 0, 0, 0]


# ----------------------------------------------------------------------------------------------
# Layout independence: NCHW and NHWC prototypes sum every logit in the same order (masks.cpp), so
# they give the same masks and probabilities to the bit. Before, the NCHW path summed channels one
# by one and the NHWC path in eight vectorized partial sums, and masks could differ by a pixel.


def layouts(protos: np.ndarray) -> dict[str, np.ndarray]:
    """The same (C, H, W) prototypes in every memory layout the core reads."""
    c, h, w = protos.shape
    padded_hwc = np.zeros((h, w, c + 3), protos.dtype)
    padded_hwc[..., :c] = protos.transpose(1, 2, 0)
    wide = np.zeros((c, h, 2 * w), protos.dtype)
    wide[:, :, ::2] = protos
    return {
        "NCHW": np.ascontiguousarray(protos),
        "NHWC": np.ascontiguousarray(protos.transpose(1, 2, 0)).transpose(2, 0, 1),
        "NHWC, padded pixels": padded_hwc[..., :c].transpose(2, 0, 1),
        "NCHW, strided columns": wide[:, :, ::2],
        "NWHC": np.ascontiguousarray(protos.transpose(2, 1, 0)).transpose(2, 1, 0),
    }


def assert_same_masks_in_every_layout(protos, coeffs, boxes, input_hw, image_hw, quant=None) -> None:
    results = {
        name: _core.assemble_masks(p, coeffs, boxes, input_hw, image_hw, soft=True, drop_empty=False, quant=quant)
        for name, p in layouts(protos).items()
    }
    for name, got in results.items():
        for what, a, b in zip(["keep", "rects", "offsets", "bits", "probs", "areas"], results["NCHW"], got):
            if what == "probs":  # bit patterns: identical, not merely close
                a, b = a.view(np.uint32), b.view(np.uint32)
            assert np.array_equal(a, b), f"{name}: {what} differ from NCHW in {np.count_nonzero(a != b)} places"


def quantized(protos: np.ndarray, dtype) -> tuple[np.ndarray, tuple[float, int]]:
    scale = float(np.abs(protos).max()) / 100
    zp = 0 if dtype == np.int8 else 128
    q = np.clip(np.round(protos / scale) + zp, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    return q, (scale, zp)


@pytest.mark.parametrize("channels", [1, 3, 8, 13, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_layouts_give_identical_masks(channels: int, dtype) -> None:
    rng = np.random.default_rng(seed_of(channels, np.dtype(dtype).name))
    protos = random_protos(rng, channels, 96, 160)
    coeffs = (rng.normal(0, 1, (12, channels)) / math.sqrt(channels)).astype(np.float32)
    boxes = random_boxes(rng, 12, (720, 1280))
    quant = None
    if dtype != np.float32:
        protos, quant = quantized(protos, dtype)
    assert_same_masks_in_every_layout(protos, coeffs, boxes, (384, 640), (720, 1280), quant)


def test_layouts_give_identical_masks_on_real_outputs() -> None:
    """Real prototypes and detections of yolov8n-seg.onnx on several coco-val-mini images."""
    from conftest import IMAGES, MODELS, require_shared

    require_shared()
    cv2 = pytest.importorskip("cv2")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(MODELS / "yolov8n-seg.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for path in sorted(IMAGES.glob("*.jpg"))[:6]:
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        lb = _core.make_letterbox(h, w, 640, 640)
        canvas = np.full((640, 640, 3), 114, np.uint8)
        canvas[lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w] = cv2.resize(
            image, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR
        )
        x = (canvas[:, :, ::-1].transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)
        det, protos = session.run(None, {name: x})
        # A low threshold: many detections, many logits near 0.
        boxes, _scores, _classes, coeffs = _core.decode_yolo(det[0], 80, 0.05, 0.7, 300, 30000, False)
        assert len(boxes) > 0, path.name
        boxes = _core.unletterbox_boxes(boxes, lb)
        assert_same_masks_in_every_layout(protos[0], coeffs, boxes, (640, 640), (h, w))
        for dtype in (np.int8, np.uint8):
            q, quant = quantized(protos[0], dtype)
            assert_same_masks_in_every_layout(q, coeffs, boxes, (640, 640), (h, w), quant)
