"""Property-based tests (hypothesis) of the core's geometry and RLE invariants.

* masks and boxes returned by the core always lie inside the image, whatever the boxes, prototypes
  and sizes (including boxes far outside the image, 1-pixel and 1xN images);
* COCO RLE from edgeseg round-trips through pycocotools: decode(our RLE) is our dense mask, our area
  is pycocotools' area, and our string is the one pycocotools encodes (1xN, Nx1, all-zero, all-one);
* letterbox geometry is invertible: a source box mapped into the model input and back stays put,
  within float rounding, and the letterbox matches the Ultralytics formula;
* InstanceMasks' crops, dense masks, areas, selections and RLE agree with each other.

The whole file runs in well under 20 s (small ``max_examples``, no deadline: the first call of a
strategy can be slow on a loaded machine).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")  # in the dev extras; skip rather than fail without it
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from edgeseg import InstanceMasks, _core  # noqa: E402

# pycocotools' decode trips a numpy 2 deprecation warning that is not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# No example database: the tests must not leave a .hypothesis/ folder in the checkout.
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------------
# strategies

image_sides = st.one_of(st.integers(1, 4), st.integers(1, 300))
# Shapes that stress RLE runs: single rows and columns, single pixels, tall and wide strips.
mask_shapes = st.one_of(
    st.tuples(st.just(1), st.integers(1, 60)),
    st.tuples(st.integers(1, 60), st.just(1)),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
)


@st.composite
def dense_masks(draw: st.DrawFn, max_n: int = 4) -> np.ndarray:
    """(N, H, W) bool stacks: random, all-zero, all-one, single pixels, sparse and dense."""
    h, w = draw(mask_shapes)
    n = draw(st.integers(1, max_n))
    kind = draw(st.sampled_from(["random", "zeros", "ones", "pixel", "density"]))
    if kind == "zeros":
        return np.zeros((n, h, w), bool)
    if kind == "ones":
        return np.ones((n, h, w), bool)
    if kind == "pixel":
        out = np.zeros((n, h, w), bool)
        for i in range(n):
            out[i, draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = True
        return out
    if kind == "density":
        seed = draw(st.integers(0, 2**32 - 1))
        p = draw(st.sampled_from([0.01, 0.5, 0.99]))
        return np.random.default_rng(seed).random((n, h, w)) < p
    return draw(hnp.arrays(np.bool_, (n, h, w)))


finite_coords = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@st.composite
def boxes_for(draw: st.DrawFn, image_hw: tuple[int, int], max_n: int = 6) -> np.ndarray:
    """Boxes in, around and far outside an image: inverted, degenerate, fractional, huge."""
    h, w = image_hw
    n = draw(st.integers(0, max_n))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(["inside", "inside", "anywhere", "whole", "degenerate"]))
        if kind == "inside":
            x1, x2 = sorted(draw(st.floats(0, w, width=32)) for _ in range(2))
            y1, y2 = sorted(draw(st.floats(0, h, width=32)) for _ in range(2))
        elif kind == "whole":
            x1, y1, x2, y2 = -5.0, -5.0, w + 5.0, h + 5.0
        elif kind == "degenerate":
            x1 = x2 = draw(st.floats(-1, w + 1, width=32))
            y1, y2 = draw(st.floats(-1, h + 1, width=32)), draw(st.floats(-1, h + 1, width=32))
        else:
            x1, y1, x2, y2 = (draw(finite_coords) for _ in range(4))
        out.append((x1, y1, x2, y2))
    return np.array(out, np.float32).reshape(-1, 4)


@st.composite
def mask_problems(draw: st.DrawFn) -> dict:
    """Prototypes, coefficients, boxes and sizes for assemble_masks (valid, possibly tiny)."""
    c = draw(st.integers(1, 6))
    ph, pw = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    stride = draw(st.sampled_from([1, 2, 4, 8]))
    image_hw = (draw(image_sides), draw(image_sides))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    protos = rng.normal(0, 1, (c, ph, pw)).astype(np.float32)
    if draw(st.booleans()):  # channels-last prototypes read through a transposed view
        protos = np.ascontiguousarray(protos.transpose(1, 2, 0)).transpose(2, 0, 1)
    boxes = draw(boxes_for(image_hw))
    coeffs = rng.normal(0, 1, (len(boxes), c)).astype(np.float32)
    return {
        "protos": protos,
        "coeffs": coeffs,
        "boxes": boxes,
        "input_hw": (ph * stride, pw * stride),
        "image_hw": image_hw,
        "soft": draw(st.booleans()),
        "drop_empty": draw(st.booleans()),
    }


def pixel_range(lo: float, hi: float, limit: int) -> tuple[int, int]:
    """Columns c with lo <= c < hi inside [0, limit), as the core crops a box (start, length)."""
    a = min(max(math.ceil(lo), 0), limit)
    b = min(max(math.ceil(hi), 0), limit)
    return a, max(b - a, 0)


# ----------------------------------------------------------------------------------------------------
# masks and boxes inside the image


@SLOW
@given(mask_problems())
def test_masks_lie_inside_the_image_and_their_boxes(p: dict) -> None:
    keep, rects, offsets, bits, probs, areas = _core.assemble_masks(
        p["protos"], p["coeffs"], p["boxes"], p["input_hw"], p["image_hw"], p["soft"], p["drop_empty"]
    )
    h, w = p["image_hw"]
    r = rects.astype(np.int64)
    assert (r >= 0).all()
    assert (r[:, 0] + r[:, 2] <= w).all() and (r[:, 1] + r[:, 3] <= h).all()
    if not p["drop_empty"]:
        assert keep.tolist() == list(range(len(p["boxes"])))
    masks = InstanceMasks(rects, offsets, bits, (h, w), probs, areas)
    dense = masks.dense()
    for j, i in enumerate(keep.tolist()):
        x1, y1, x2, y2 = (float(v) for v in p["boxes"][i])
        (x0, cw), (y0, ch) = pixel_range(x1, x2, w), pixel_range(y1, y2, h)
        assert tuple(r[j]) == (x0, y0, cw, ch)  # the crop is exactly the box's pixels in the image
        outside = dense[j].copy()
        outside[y0 : y0 + ch, x0 : x0 + cw] = False
        assert not outside.any()  # no pixel outside the box
        assert int(dense[j].sum()) == int(areas[j])
        if p["drop_empty"]:
            assert areas[j] > 0
        if p["soft"]:
            soft = masks.soft(j)
            assert soft.shape == (ch, cw) and ((soft >= 0) & (soft <= 1)).all()
            assert (soft[masks[j] == 1] >= 0.5).all() and (soft[masks[j] == 0] <= 0.5).all()


@FAST
@given(
    st.tuples(image_sides, image_sides),
    st.tuples(st.integers(1, 1280), st.integers(1, 1280)),
    st.data(),
)
def test_unletterboxed_boxes_lie_inside_the_image(src_hw, dst_hw, data) -> None:
    lb = _core.make_letterbox(*src_hw, *dst_hw)
    boxes = data.draw(boxes_for(dst_hw, max_n=8))  # anywhere in (and around) the model input
    out = _core.unletterbox_boxes(boxes, lb)
    assert out.dtype == np.float32 and out.shape == boxes.shape
    h, w = src_hw
    assert (out >= 0).all()
    assert (out[:, [0, 2]] <= w).all() and (out[:, [1, 3]] <= h).all()


@SLOW
@given(st.integers(0, 2**32 - 1), st.tuples(image_sides, image_sides), st.sampled_from([(64, 64), (32, 96)]))
def test_full_postprocess_boxes_and_masks_inside_the_image(seed: int, image_hw, input_hw) -> None:
    # decode -> unletterbox -> masks, as the head does, on a random raw prediction
    rng = np.random.default_rng(seed)
    nc, nm, anchors = 3, 4, 200
    pred = np.empty((4 + nc + nm, anchors), np.float32)
    in_h, in_w = input_hw
    pred[0] = rng.uniform(-20, in_w + 20, anchors)
    pred[1] = rng.uniform(-20, in_h + 20, anchors)
    pred[2:4] = rng.uniform(0, max(in_h, in_w), (2, anchors))
    pred[4 : 4 + nc] = rng.random((nc, anchors))
    pred[4 + nc :] = rng.normal(0, 1, (nm, anchors))
    boxes, scores, _, coeffs = _core.decode_yolo(pred, nc, 0.25, 0.7, 100, 1000, False)
    lb = _core.make_letterbox(*image_hw, *input_hw)
    boxes = _core.unletterbox_boxes(boxes, lb)
    protos = rng.normal(0, 1, (nm, in_h // 4, in_w // 4)).astype(np.float32)
    _, rects, _, _, _, _ = _core.assemble_masks(protos, coeffs, boxes, input_hw, image_hw)
    h, w = image_hw
    assert ((boxes >= 0) & (boxes <= np.float32([w, h, w, h]))).all()
    r = rects.astype(np.int64)
    assert (r >= 0).all() and (r[:, 0] + r[:, 2] <= w).all() and (r[:, 1] + r[:, 3] <= h).all()
    assert (np.diff(scores) <= 0).all() and (scores > 0.25).all()


# ----------------------------------------------------------------------------------------------------
# RLE against pycocotools


@FAST
@given(dense_masks())
def test_rle_round_trips_through_pycocotools(dense: np.ndarray) -> None:
    masks = InstanceMasks.from_dense(dense)
    rles = masks.rle()
    assert len(rles) == len(dense)
    for m, rle, area in zip(dense, rles, masks.areas()):
        assert rle["size"] == list(m.shape)
        decoded = mask_utils.decode(rle)
        assert decoded.shape == m.shape and np.array_equal(decoded.astype(bool), m)
        assert int(mask_utils.area(rle)) == int(area) == int(m.sum())
        # the very string pycocotools writes for this mask
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


@st.composite
def placed_crops(draw: st.DrawFn) -> tuple[tuple[int, int], np.ndarray, list[np.ndarray]]:
    """Rects anywhere inside an image (empty, touching edges, the whole image) and random crops."""
    h, w = draw(mask_shapes)
    n = draw(st.integers(0, 5))
    rects, crops = [], []
    for _ in range(n):
        x0, y0 = draw(st.integers(0, w)), draw(st.integers(0, h))
        cw, ch = draw(st.integers(0, w - x0)), draw(st.integers(0, h - y0))
        rects.append((x0, y0, cw, ch))
        crops.append(draw(hnp.arrays(np.bool_, (ch, cw))))
    return (h, w), np.array(rects, np.int32).reshape(-1, 4), crops


@FAST
@given(placed_crops())
def test_rle_of_crops_round_trips_through_pycocotools(case) -> None:
    image_hw, rects, crops = case
    masks = InstanceMasks.from_crops(rects, crops, image_hw)
    dense = masks.dense()
    for m, rle, area in zip(dense, masks.rle(), masks.areas()):
        assert np.array_equal(mask_utils.decode(rle).astype(bool), m)
        assert int(mask_utils.area(rle)) == int(area)


# ----------------------------------------------------------------------------------------------------
# letterbox geometry


def ref_letterbox(src_h: int, src_w: int, dst_h: int, dst_w: int) -> tuple[int, int, int, int]:
    """Ultralytics' LetterBox: (new_h, new_w, pad_top, pad_left)."""
    r = min(dst_h / src_h, dst_w / src_w)
    new_w, new_h = max(round(src_w * r), 1), max(round(src_h * r), 1)
    return new_h, new_w, round((dst_h - new_h) / 2 - 0.1), round((dst_w - new_w) / 2 - 0.1)


sizes = st.one_of(st.integers(1, 8), st.integers(1, 5000))


@FAST
@given(sizes, sizes, sizes, sizes)
def test_letterbox_matches_ultralytics_and_fits(src_h: int, src_w: int, dst_h: int, dst_w: int) -> None:
    lb = _core.make_letterbox(src_h, src_w, dst_h, dst_w)
    assert (lb.new_h, lb.new_w, lb.pad_top, lb.pad_left) == ref_letterbox(src_h, src_w, dst_h, dst_w)
    assert 1 <= lb.new_h <= dst_h and 1 <= lb.new_w <= dst_w
    assert 0 <= lb.pad_top <= dst_h - lb.new_h and 0 <= lb.pad_left <= dst_w - lb.new_w


@FAST
@given(st.tuples(sizes, sizes), st.tuples(sizes, sizes), st.data())
def test_letterbox_round_trip(src_hw, dst_hw, data) -> None:
    lb = _core.make_letterbox(*src_hw, *dst_hw)
    h, w = src_hw
    n = data.draw(st.integers(1, 6))
    fractions = data.draw(hnp.arrays(np.float64, (n, 4), elements=st.floats(0, 1)))
    src = np.sort(fractions.reshape(n, 2, 2), axis=1).reshape(n, 4) * np.array([w, h, w, h])
    src = src[:, [0, 1, 2, 3]]
    gx, gy = lb.new_w / w, lb.new_h / h
    into = (src * [gx, gy, gx, gy] + [lb.pad_left, lb.pad_top, lb.pad_left, lb.pad_top]).astype(np.float32)
    back = _core.unletterbox_boxes(into, lb).astype(np.float64)
    # float32 rounding of input coordinates (relative 2**-24), magnified by 1 / gain
    tol = (float(np.abs(into).max()) * 2.0**-22 + 1e-4) / min(gx, gy)
    np.testing.assert_allclose(back, src, rtol=0, atol=tol)


# ----------------------------------------------------------------------------------------------------
# InstanceMasks: crops, dense masks, areas, select


@FAST
@given(placed_crops(), st.data())
def test_instance_masks_crop_dense_consistency(case, data) -> None:
    image_hw, rects, crops = case
    masks = InstanceMasks.from_crops(rects, crops, image_hw)
    dense = masks.dense()
    assert dense.shape == (len(crops), *image_hw) and dense.dtype == bool
    for i, ((x0, y0, cw, ch), crop) in enumerate(zip(rects.tolist(), crops)):
        assert masks[i].shape == (ch, cw)
        assert np.array_equal(masks[i].astype(bool), crop)
        assert np.array_equal(dense[i, y0 : y0 + ch, x0 : x0 + cw], crop)
        assert dense[i].sum() == crop.sum() == masks.areas()[i]
    # from_dense of the dense stack gives the same masks, cropped tight
    again = InstanceMasks.from_dense(dense) if len(crops) else None
    if again is not None:
        assert np.array_equal(again.dense(), dense)
        assert np.array_equal(again.areas(), masks.areas())
    # select keeps crops, rects and areas together, in the order asked
    if len(crops):
        index = data.draw(st.lists(st.integers(0, len(crops) - 1), max_size=6))
        picked = masks.select(np.array(index, np.int64))
        assert np.array_equal(picked.dense(), dense[index])
        assert np.array_equal(picked.areas(), masks.areas()[index])
        assert [r["counts"] for r in picked.rle()] == [masks.rle()[i]["counts"] for i in index]
