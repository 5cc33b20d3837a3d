"""COCO RLE from the C++ core against pycocotools, and the InstanceMasks container."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from edgeseg import InstanceMasks, _core

# pycocotools' decode trips a numpy 2 deprecation warning that is not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def crops_to_masks(image_hw, rects, crops) -> InstanceMasks:
    return InstanceMasks.from_crops(np.array(rects, np.int32).reshape(-1, 4), crops, image_hw)


def random_crop_masks(rng: np.random.Generator, image_hw, n: int) -> InstanceMasks:
    h, w = image_hw
    rects, crops = [], []
    for k in range(n):
        kind = k % 6
        if kind == 0:  # the whole image
            x0, y0, cw, ch = 0, 0, w, h
        elif kind == 1:  # touching the far corner
            cw, ch = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
            x0, y0 = w - cw, h - ch
        elif kind == 2:  # empty crop
            x0, y0 = int(rng.integers(0, w + 1)), int(rng.integers(0, h + 1))
            cw, ch = (
                (0, int(rng.integers(0, h - y0 + 1))) if rng.random() < 0.5 else (int(rng.integers(0, w - x0 + 1)), 0)
            )
        else:
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cw, ch = int(rng.integers(1, w - x0 + 1)), int(rng.integers(1, h - y0 + 1))
        density = rng.choice([0.0, 0.05, 0.5, 0.95, 1.0])
        crop = (rng.random((ch, cw)) < density).astype(np.uint8)
        if kind == 0 and crop.size:
            crop[0, 0] = 1  # the first pixel of the image is set: counts start with an empty run
        rects.append((x0, y0, cw, ch))
        crops.append(crop)
    return crops_to_masks(image_hw, rects, crops)


IMAGE_SIZES = [(1, 1), (1, 7), (7, 1), (2, 3), (31, 17), (64, 64), (427, 640), (100, 1000)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("image_hw", IMAGE_SIZES)
def test_rle_matches_pycocotools(seed: int, image_hw) -> None:
    rng = np.random.default_rng([seed, *image_hw])
    masks = random_crop_masks(rng, image_hw, 12)
    dense = masks.dense()
    rles = masks.rle()
    assert len(rles) == len(masks)
    for m, rle in zip(dense, rles):
        assert rle["size"] == list(image_hw)
        assert isinstance(rle["counts"], str)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded, m.astype(np.uint8))
        want = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert rle["counts"] == want["counts"].decode()
        assert mask_utils.area(want) == m.sum()


def test_rle_first_pixel_and_full_and_empty() -> None:
    image_hw = (5, 4)
    cases = [
        np.ones((5, 4), np.uint8),
        np.zeros((5, 4), np.uint8),
        np.eye(5, 4, dtype=np.uint8),
        np.pad(np.ones((1, 1), np.uint8), ((0, 4), (0, 3))),  # only (0, 0)
        np.pad(np.ones((1, 1), np.uint8), ((4, 0), (3, 0))),  # only the last pixel
    ]
    masks = crops_to_masks(image_hw, [(0, 0, 4, 5)] * len(cases), cases)
    for m, rle in zip(cases, masks.rle()):
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(m))["counts"].decode()
        np.testing.assert_array_equal(mask_utils.decode({"size": [5, 4], "counts": rle["counts"]}), m)


def test_rle_long_runs() -> None:
    # Runs longer than 2**15 need several 5-bit groups; differences of counts can be negative.
    image_hw = (1000, 1500)
    rects = [(0, 0, 1500, 1000), (700, 0, 1, 1000), (0, 999, 1500, 1), (1499, 0, 1, 1)]
    crops = [
        np.pad(np.ones((10, 1500), np.uint8), ((500, 490), (0, 0))),
        np.ones((1000, 1), np.uint8),
        np.ones((1, 1500), np.uint8),
        np.ones((1, 1), np.uint8),
    ]
    masks = crops_to_masks(image_hw, rects, crops)
    for m, rle in zip(masks.dense(), masks.rle()):
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


def test_rle_empty_and_invalid() -> None:
    assert InstanceMasks.empty((10, 20)).rle() == []
    bits = np.ones(2, np.uint8)  # a packed 2x2 crop: one byte per row
    offsets = np.array([0, 2], np.int64)
    with pytest.raises(ValueError):  # crop outside the image
        _core.rle_encode(bits, offsets, np.array([[8, 0, 2, 2]], np.int32), (10, 9))
    with pytest.raises(ValueError):  # offsets do not match the crop size
        _core.rle_encode(bits, offsets, np.array([[0, 0, 2, 3]], np.int32), (10, 10))
    with pytest.raises(ValueError):
        _core.rle_encode(bits, offsets, np.array([[0, 0, 2, 2]], np.int32), (0, 10))
    with pytest.raises(ValueError):
        _core.rle_encode(bits, offsets[:1], np.array([[0, 0, 2, 2]], np.int32), (10, 10))
    with pytest.raises(ValueError):
        _core.rle_encode(bits.astype(bool), offsets, np.array([[0, 0, 2, 2]], np.int32), (10, 10))


def test_rle_of_assembled_masks() -> None:
    rng = np.random.default_rng(5)
    protos = rng.normal(0, 1, (8, 160, 160)).astype(np.float32)
    coeffs = rng.normal(0, 1, (5, 8)).astype(np.float32)
    boxes = np.float32([[0, 0, 640, 427], [10.5, 3, 200, 100], [600, 400, 640, 427], [0, 0, 1, 1], [5, 5, 5, 5]])
    _keep, rects, offsets, bits, _, _ = _core.assemble_masks(protos, coeffs, boxes, (640, 640), (427, 640))
    masks = InstanceMasks(rects, offsets, bits, (427, 640))
    dense = masks.dense().astype(np.uint8)
    want = mask_utils.encode(np.asfortranarray(dense.transpose(1, 2, 0)))
    assert [r["counts"] for r in masks.rle()] == [w["counts"].decode() for w in want]


# ----------------------------------------------------------------------------------------------
# InstanceMasks


def blobs(rng: np.random.Generator, image_hw, n: int) -> np.ndarray:
    """Random filled ellipses and rectangles (blob-like masks)."""
    h, w = image_hw
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(5, w // 3)), int(rng.integers(5, h // 3))
        if i % 2:
            cv2.ellipse(out[i], (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            cv2.rectangle(out[i], (cx - ax, cy - ay), (cx + ax, cy + ay), 1, -1)
    return out.astype(bool)


@pytest.mark.parametrize("seed", range(3))
def test_from_dense_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    image_hw = (int(rng.integers(1, 200)), int(rng.integers(1, 200)))
    dense = rng.random((9, *image_hw)) < rng.choice([0.0, 0.001, 0.3, 1.0], (9, 1, 1))
    dense[0] = False
    masks = InstanceMasks.from_dense(dense)
    assert len(masks) == 9 and masks.image_shape == image_hw
    np.testing.assert_array_equal(masks.dense(), dense)
    np.testing.assert_array_equal(masks.areas(), dense.sum((1, 2)))
    assert masks.areas().dtype == np.int64
    # Crops are tight around the pixels.
    for (x0, y0, w, h), m in zip(masks.rects.tolist(), dense):
        if not m.any():
            assert w * h == 0
            continue
        ys, xs = np.nonzero(m)
        assert (x0, y0, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    # And the RLE of the round trip matches pycocotools too.
    for m, rle in zip(dense, masks.rle()):
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


def test_from_dense_invalid_and_empty() -> None:
    with pytest.raises(ValueError):
        InstanceMasks.from_dense(np.zeros((4, 4), bool))
    empty = InstanceMasks.from_dense(np.zeros((0, 6, 7), bool))
    assert len(empty) == 0 and empty.dense().shape == (0, 6, 7)
    assert empty.areas().tolist() == [] and empty.rle() == [] and empty.polygons() == []


def test_areas_of_crops() -> None:
    rng = np.random.default_rng(1)
    masks = random_crop_masks(rng, (50, 60), 18)
    np.testing.assert_array_equal(masks.areas(), masks.dense().sum((1, 2)))
    np.testing.assert_array_equal(masks.areas(), [m.sum() for m in masks])


def test_polygons_cover_blobs() -> None:
    rng = np.random.default_rng(2)
    image_hw = (240, 320)
    dense = blobs(rng, image_hw, 10)
    masks = InstanceMasks.from_dense(dense)
    polys = masks.polygons()
    assert len(polys) == len(masks)
    for m, ps in zip(dense, polys):
        assert len(ps) >= 1
        canvas = np.zeros(image_hw, np.uint8)
        for p in ps:
            assert p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3
            assert p[:, 0].min() >= 0 and p[:, 0].max() <= image_hw[1] - 1
            assert p[:, 1].min() >= 0 and p[:, 1].max() <= image_hw[0] - 1
        cv2.fillPoly(canvas, [np.round(p).astype(np.int32) for p in ps], 1)
        inter = np.logical_and(canvas, m).sum()
        union = np.logical_or(canvas, m).sum()
        assert inter / union > 0.8


def test_polygons_several_blobs_and_empty() -> None:
    dense = np.zeros((3, 50, 60), bool)
    dense[0, 5:15, 5:15] = True
    dense[0, 30:45, 40:55] = True  # two blobs: two polygons
    dense[2, 0:50, 0:60] = True  # the whole image, touching every border
    polys = InstanceMasks.from_dense(dense).polygons()
    assert len(polys[0]) == 2 and polys[1] == [] and len(polys[2]) == 1
    boxes = sorted((p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()) for p in polys[0])
    assert boxes == [(5, 5, 14, 14), (40, 30, 54, 44)]
    p = polys[2][0]
    assert (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()) == (0, 0, 59, 49)


def test_select() -> None:
    rng = np.random.default_rng(3)
    masks = random_crop_masks(rng, (40, 30), 9)
    masks.probabilities = rng.random(int((masks.rects[:, 2] * masks.rects[:, 3]).sum())).astype(np.float32)
    dense = masks.dense()
    for index in [[4, 0, 8], np.array([2, 2]), np.arange(9) % 2 == 0, [], slice(None, None, -1)]:
        sub = masks.select(index)
        want = np.arange(9)[index]
        assert len(sub) == len(want)
        np.testing.assert_array_equal(sub.dense(), dense[want])
        np.testing.assert_array_equal(sub.rects, masks.rects[want])
        np.testing.assert_array_equal(sub.areas(), masks.areas()[want])
        for j, i in enumerate(want):
            np.testing.assert_array_equal(sub.soft(j), masks.soft(i))
        assert [r["counts"] for r in sub.rle()] == [masks.rle()[i]["counts"] for i in want]
