"""Core NMS variants (Fast, Matrix over boxes and masks, mask-IoU NMS, pairwise mask IoU) against numpy
transcriptions of the official code (tests/reference_nms.py): on real YOLO candidates of yolov8n-seg on
coco-val-mini images and on generated edge cases (ties, empty, single, identical and degenerate boxes)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import reference_nms as ref
from edgeseg import _core
from edgeseg.masks import InstanceMasks


def crops(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (N, H, W) masks as the (rects, offsets, bits) of box-cropped bit-packed crops."""
    m = InstanceMasks.from_dense(masks)
    return m.rects, m.offsets, m.data


# ---- basic behaviour --------------------------------------------------------------------------


def test_fast_nms_basic() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 0, 1], np.int32)
    r = _core.fast_nms(boxes, scores, classes, iou=0.5)
    assert isinstance(r, _core.NmsResult)
    assert r.keep.tolist() == [0, 2, 3]
    assert r.class_ids.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(r.scores, scores[[0, 2, 3]])
    assert _core.fast_nms(boxes, scores, classes, agnostic=True).keep.tolist() == [0, 2]


def test_fast_nms_suppressed_boxes_still_suppress() -> None:
    # Fast NMS differs from greedy NMS: box 2 overlaps only box 1, which box 0 suppresses; greedy NMS
    # would keep box 2, Fast NMS does not.
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert _core.fast_nms(boxes, scores, iou=0.3).keep.tolist() == [0]
    assert _core.nms(boxes, scores, iou=0.3).tolist() == [0, 2]


def test_fast_nms_score_matrix_is_multilabel() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([[0.9, 0.2], [0.8, 0.7]], np.float32)  # (N, C)
    r = _core.fast_nms(boxes, scores, iou=0.5)
    # Class 1: box 1 (0.7) beats box 0 (0.2), which it suppresses; class 0: box 0 suppresses box 1.
    assert list(zip(r.keep.tolist(), r.class_ids.tolist())) == [(0, 0), (1, 1)]
    np.testing.assert_array_equal(r.scores, np.float32([0.9, 0.7]))
    k, c, _ = ref.fast_nms(boxes, scores.T, 0.5)
    assert k.tolist() == r.keep.tolist() and c.tolist() == r.class_ids.tolist()


def test_matrix_nms_basic() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    r = _core.matrix_nms(boxes, scores)
    # The duplicate is decayed by exp(-2 * 1^2); the separate box keeps its score.
    assert r.keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(r.scores, [0.9, 0.7, 0.8 * np.exp(-2.0)], rtol=1e-6)
    r = _core.matrix_nms(boxes, scores, kernel="linear", filter_thr=0.1)
    assert r.keep.tolist() == [0, 2]


def test_mask_nms_and_pairwise_iou() -> None:
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 0:10, 0:10] = True
    masks[1, 0:10, 0:9] = True  # IoU 0.9 with mask 0
    masks[2, 10:20, 10:20] = True
    rects, offsets, bits = crops(masks)
    iou = _core.pairwise_mask_iou(rects, offsets, bits)
    np.testing.assert_allclose(iou, ref.dense_mask_iou(masks), rtol=0, atol=0)
    scores = np.array([0.5, 0.9, 0.3], np.float32)
    assert _core.mask_nms(rects, offsets, bits, scores, iou=0.5).keep.tolist() == [1, 2]
    assert _core.mask_nms(rects, offsets, bits, scores, iou=0.95).keep.tolist() == [1, 0, 2]
    r = _core.mask_matrix_nms(rects, offsets, bits, scores)
    k, _, s = ref.mask_matrix_nms(masks, np.zeros(3, np.int64), scores)
    assert r.keep.tolist() == k.tolist()
    np.testing.assert_allclose(r.scores, s, rtol=1e-6)


def test_empty_inputs() -> None:
    empty = np.zeros((0, 4), np.float32)
    none = np.zeros(0, np.float32)
    for r in (
        _core.fast_nms(empty, none),
        _core.fast_nms(empty, np.zeros((0, 3), np.float32)),
        _core.matrix_nms(empty, none),
        _core.mask_nms(np.zeros((0, 4), np.int32), np.zeros(1, np.int64), np.zeros(0, np.uint8), none),
        _core.mask_matrix_nms(np.zeros((0, 4), np.int32), np.zeros(1, np.int64), np.zeros(0, np.uint8), none),
    ):
        assert len(r.keep) == len(r.scores) == len(r.class_ids) == 0
        assert r.keep.dtype == np.int64 and r.scores.dtype == np.float32 and r.class_ids.dtype == np.int32


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _core.fast_nms(np.zeros((2, 3), np.float32), np.zeros(2, np.float32)), "shape"),
        (lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros(3, np.float32)), "one entry per box"),
        (lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float64)), "float32"),
        (lambda: _core.fast_nms(np.zeros((1, 4), np.float32), np.array([np.nan], np.float32)), "NaN"),
        (lambda: _core.fast_nms(np.array([[0, 0, np.inf, 1]], np.float32), np.ones(1, np.float32)), "boxes"),
        (lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), iou=1.5), "iou"),
        (lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), top_k=-2), "top_k"),
        (
            lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32), np.zeros(2, np.int32)),
            "class_ids",
        ),
        (lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros((3, 3), np.float32)), "score matrix"),
        (lambda: _core.fast_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), conf=2.0), "conf"),
        (lambda: _core.matrix_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), kernel="box"), "kernel"),
        (lambda: _core.matrix_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), sigma=0.0), "sigma"),
        (lambda: _core.matrix_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), max_det=-3), "max_det"),
        (
            lambda: _core.matrix_nms(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros(1, np.int32)),
            "class_ids",
        ),
        (
            lambda: _core.mask_nms(
                np.zeros((1, 4), np.int32), np.zeros(3, np.int64), np.zeros(0, np.uint8), np.zeros(1, np.float32)
            ),
            "offsets",
        ),
        (
            lambda: _core.mask_nms(
                np.array([[0, 0, 8, 2]], np.int32),
                np.array([0, 3], np.int64),
                np.zeros(3, np.uint8),
                np.zeros(1, np.float32),
            ),
            "offsets do not match",
        ),
        (
            lambda: _core.mask_matrix_nms(
                np.array([[0, 0, 8, 1]], np.int32),
                np.array([0, 1], np.int64),
                np.zeros(1, np.uint8),
                np.zeros(2, np.float32),
            ),
            "one entry per mask",
        ),
        (
            lambda: _core.pairwise_mask_iou(
                np.array([[0, 0, -8, 1]], np.int32), np.array([0, 0], np.int64), np.zeros(1, np.uint8)
            ),
            "negative",
        ),
    ],
)
def test_bad_input_is_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
