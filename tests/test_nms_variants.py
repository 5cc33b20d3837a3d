"""Core NMS variants (Fast, Matrix over boxes and masks, mask-IoU NMS, pairwise mask IoU) against numpy
transcriptions of the official code (tests/reference_nms.py): on real YOLO candidates of yolov8n-seg on
coco-val-mini images and on generated edge cases (ties, empty, single, identical and degenerate boxes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_nms as ref
from edgeseg import _core
from edgeseg.masks import InstanceMasks

from conftest import ANNOTATIONS, IMAGES, MODELS, require_shared


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


# ---- real YOLO candidates (yolov8n-seg on coco-val-mini) -----------------------------------------

REAL_IMAGES = 4  # images with many overlapping candidates; every variant runs on each


@pytest.fixture(scope="module")
def real_candidates() -> list[dict[str, np.ndarray]]:
    """Per image: every YOLO candidate above conf 0.001 (boxes in input pixels, scores, classes), the raw
    class-score matrix of the anchors above 0.05 (YOLACT-style multilabel input), and the masks of the best
    300 candidates at prototype resolution (bit-packed crops, as mask NMS in the YOLO head compares them)."""
    require_shared()
    import cv2

    import edgeseg

    model = edgeseg.load(MODELS / "yolov8n-seg.onnx")
    out = []
    for path in sorted(IMAGES.glob("*.jpg"))[:REAL_IMAGES]:
        image = cv2.imread(str(path))[:, :, ::-1]
        tensor, _ = model.preprocess([image])
        pred, protos = (o[0] for o in model.infer(tensor))
        cand = _core.decode_yolo(pred, 80, 0.001, 1.0, 30000, 30000, False)  # IoU 1: nothing suppressed
        top = slice(0, 300)
        pboxes = np.clip(cand.boxes[top] / 4, 0, 160).astype(np.float32)
        ms = _core.assemble_masks(protos, cand.coefficients[top], pboxes, (160, 160), (160, 160), drop_empty=False)
        cls_scores = pred[4:84].T
        multi = cls_scores.max(1) > 0.05
        xywh = pred[:4, multi].T
        xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        out.append(
            {
                "boxes": cand.boxes,
                "scores": cand.scores,
                "classes": cand.class_ids,
                "matrix_boxes": np.ascontiguousarray(xyxy, np.float32),
                "matrix_scores": np.ascontiguousarray(cls_scores[multi], np.float32),
                "rects": ms.rects,
                "offsets": ms.offsets,
                "bits": ms.bits,
                "dense": InstanceMasks(ms.rects, ms.offsets, ms.bits, (160, 160)).dense(),
            }
        )
    assert sum(len(c["scores"]) for c in out) > 1000  # real work: hundreds of candidates an image
    return out


def assert_same_decay(
    keep: np.ndarray, scores: np.ndarray, ref_keep: np.ndarray, ref_scores: np.ndarray, filter_thr: float = -1
) -> None:
    """Matrix NMS results agree: the same candidates with the same decayed scores (float32 exp may differ
    by an ulp between libm and numpy, so scores within 1e-5 relative, ties in any order, and a candidate
    whose score sits at filter_thr may fall either side)."""
    ours = dict(zip(keep.tolist(), scores.tolist()))
    theirs = dict(zip(ref_keep.tolist(), ref_scores.tolist()))
    near = {k for k, s in {**ours, **theirs}.items() if filter_thr > 0 and abs(s - filter_thr) <= 1e-5 * filter_thr}
    assert set(ours) - near == set(theirs) - near
    common = sorted(set(ours) & set(theirs))
    np.testing.assert_allclose([ours[k] for k in common], [theirs[k] for k in common], rtol=1e-5, atol=1e-7)
    assert np.all(np.diff(scores) <= 0), "not sorted by decayed score"


def test_fast_nms_real_candidates(real_candidates: list[dict[str, np.ndarray]]) -> None:
    for c in real_candidates:
        for iou, top_k, max_det in ((0.5, 200, 100), (0.7, 200, 300), (0.3, 50, -1)):
            r = _core.fast_nms(c["boxes"], c["scores"], c["classes"], iou=iou, top_k=top_k, max_det=max_det)
            k, cls, s = ref.fast_nms_by_label(c["boxes"], c["scores"], c["classes"], iou, top_k, max_det)
            assert r.keep.tolist() == k.tolist()
            assert r.class_ids.tolist() == cls.tolist()
            np.testing.assert_array_equal(r.scores, s)
        # YOLACT's own input: a per-class score matrix (multilabel), and the cross-class mode.
        boxes, matrix = c["matrix_boxes"], c["matrix_scores"]
        r = _core.fast_nms(boxes, matrix, iou=0.5, top_k=200, max_det=100)
        k, cls, s = ref.fast_nms(boxes, matrix.T, 0.5, 200, 100)
        assert len(k) > 10
        assert r.keep.tolist() == k.tolist() and r.class_ids.tolist() == cls.tolist()
        np.testing.assert_array_equal(r.scores, s)
        r = _core.fast_nms(boxes, matrix, iou=0.5, top_k=200, max_det=-1, agnostic=True)
        k, cls, s = ref.cc_fast_nms(boxes, matrix.T, 0.5, 200)
        assert r.keep.tolist() == k.tolist() and r.class_ids.tolist() == cls.tolist()
        np.testing.assert_array_equal(r.scores, s)


def test_matrix_nms_real_candidates(real_candidates: list[dict[str, np.ndarray]]) -> None:
    for c in real_candidates:
        for kernel, sigma, pre, max_det, thr in (("gaussian", 2.0, -1, -1, -1), ("linear", 2.0, 500, 100, 0.05)):
            r = _core.matrix_nms(
                c["boxes"], c["scores"], c["classes"], kernel=kernel, sigma=sigma, pre_topk=pre, max_det=max_det,
                filter_thr=thr,
            )  # fmt: skip
            k, _, s = ref.box_matrix_nms(c["boxes"], c["classes"], c["scores"], thr, pre, max_det, kernel, sigma)
            if max_det < 0:
                assert_same_decay(r.keep, r.scores, k, s, thr)
            else:  # the cut at max_det may fall inside a tie: compare the scores in rank order
                np.testing.assert_allclose(r.scores, s, rtol=1e-5)
            assert (r.scores < c["scores"][r.keep] * 0.999).any()  # overlap did decay some


def test_mask_variants_real_candidates(real_candidates: list[dict[str, np.ndarray]]) -> None:
    for c in real_candidates:
        n = len(c["rects"])
        crops_ = (c["rects"], c["offsets"], c["bits"])
        scores, classes, dense = c["scores"][:n], c["classes"][:n], c["dense"]
        np.testing.assert_array_equal(_core.pairwise_mask_iou(*crops_), ref.dense_mask_iou(dense))
        for iou in (0.3, 0.5, 0.7):
            r = _core.mask_nms(*crops_, scores, classes, iou=iou, max_det=-1)
            assert r.keep.tolist() == ref.mask_nms(dense, scores, classes, iou).tolist()
        r = _core.mask_nms(*crops_, scores, classes, iou=0.5, max_det=-1, agnostic=True)
        assert r.keep.tolist() == ref.mask_nms(dense, scores, np.zeros(n), 0.5).tolist()
        for kernel in ("gaussian", "linear"):
            r = _core.mask_matrix_nms(*crops_, scores, classes, kernel=kernel)
            k, _, s = ref.mask_matrix_nms(dense, classes, scores, kernel=kernel)
            assert_same_decay(r.keep, r.scores, k, s)
            r = _core.mask_matrix_nms(*crops_, scores, classes, pre_topk=100, filter_thr=0.05)
            k, _, s = ref.mask_matrix_nms(dense, classes, scores, filter_thr=0.05, nms_pre=100)
            assert_same_decay(r.keep, r.scores, k, s, 0.05)


# ---- generated edge cases -------------------------------------------------------------------------

# Boxes on a coarse grid (identical boxes, shared edges), some degenerate (zero or negative extent);
# scores from a few values (ties); a few classes.
coord = st.integers(-2, 12).map(float)
box = st.tuples(coord, coord, st.integers(-1, 8), st.integers(-1, 8)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3])
)
candidates = st.integers(0, 24).flatmap(
    lambda n: st.tuples(
        st.lists(box, min_size=n, max_size=n),
        st.lists(st.sampled_from([0.1, 0.3, 0.3, 0.5, 0.9, 0.9]), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
    )
)
fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_arrays(c: tuple[list, list, list]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array(c[0], np.float32).reshape(-1, 4),
        np.array(c[1], np.float32),
        np.array(c[2], np.int32),
    )


@fuzz
@given(candidates, st.sampled_from([0.0, 0.3, 0.5, 1.0]), st.sampled_from([1, 3, 200]), st.sampled_from([-1, 0, 4]))
def test_fast_nms_edge_cases(c: tuple, iou: float, top_k: int, max_det: int) -> None:
    boxes, scores, classes = as_arrays(c)
    r = _core.fast_nms(boxes, scores, classes, iou=iou, top_k=top_k, max_det=max_det)
    k, cls, s = ref.fast_nms_by_label(boxes, scores, classes, iou, top_k, max_det)
    assert r.keep.tolist() == k.tolist() and r.class_ids.tolist() == cls.tolist()
    np.testing.assert_array_equal(r.scores, s)
    # The same candidates as a one-hot score matrix (the other classes at score 0 join every column).
    matrix = np.zeros((len(scores), 3), np.float32)
    matrix[np.arange(len(scores)), classes] = scores
    r = _core.fast_nms(boxes, matrix, iou=iou, top_k=top_k, max_det=max_det)
    k, cls, s = ref.fast_nms(boxes, matrix.T, iou, top_k, max_det)
    assert r.keep.tolist() == k.tolist() and r.class_ids.tolist() == cls.tolist()
    r = _core.fast_nms(boxes, matrix, iou=iou, top_k=top_k, max_det=-1, agnostic=True)
    k, cls, s = ref.cc_fast_nms(boxes, matrix.T, iou, top_k)
    assert r.keep.tolist() == k.tolist() and r.class_ids.tolist() == cls.tolist()


@fuzz
@given(candidates, st.sampled_from(["gaussian", "linear"]), st.sampled_from([0.5, 2.0]), st.sampled_from([-1, 0.2]))
def test_matrix_nms_edge_cases(c: tuple, kernel: str, sigma: float, thr: float) -> None:
    boxes, scores, classes = as_arrays(c)
    r = _core.matrix_nms(boxes, scores, classes, kernel=kernel, sigma=sigma, filter_thr=thr)
    k, _, s = ref.box_matrix_nms(boxes, classes, scores, thr, -1, -1, kernel, sigma)
    assert_same_decay(r.keep, r.scores, k, s, thr)
    assert np.all(r.scores <= scores[r.keep])  # a decay never raises a score


masks_st = st.integers(0, 7).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.lists(st.booleans(), min_size=100, max_size=100).map(lambda v: np.array(v).reshape(10, 10)),
            min_size=n,
            max_size=n,
        ),
        st.lists(st.sampled_from([0.2, 0.5, 0.5, 0.8]), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.booleans(),
    )
)


@fuzz
@given(masks_st, st.sampled_from([0.0, 0.3, 0.7, 1.0]))
def test_mask_variants_edge_cases(c: tuple, iou: float) -> None:
    masks, scores, classes, duplicate = c
    dense = np.array(masks, bool).reshape(-1, 10, 10)
    if duplicate and len(dense) > 1:
        dense[1] = dense[0]  # identical masks
    if len(dense) > 2:
        dense[2] = False  # an empty mask
    scores, classes = np.array(scores, np.float32), np.array(classes, np.int32)
    crops_ = crops(dense)
    np.testing.assert_array_equal(_core.pairwise_mask_iou(*crops_), ref.dense_mask_iou(dense))
    r = _core.mask_nms(*crops_, scores, classes, iou=iou, max_det=-1)
    assert r.keep.tolist() == ref.mask_nms(dense, scores, classes, iou).tolist()
    for kernel in ("gaussian", "linear"):
        r = _core.mask_matrix_nms(*crops_, scores, classes, kernel=kernel)
        k, _, s = ref.mask_matrix_nms(dense, classes, scores, kernel=kernel)
        assert_same_decay(r.keep, r.scores, k, s)


def test_single_and_identical() -> None:
    one = np.array([[1, 2, 3, 4]], np.float32)
    for r in (_core.fast_nms(one, np.ones(1, np.float32)), _core.matrix_nms(one, np.ones(1, np.float32))):
        assert r.keep.tolist() == [0] and r.scores.tolist() == [1.0]
    same = np.repeat(one, 3, 0)
    s = np.array([0.5, 0.5, 0.5], np.float32)
    assert _core.fast_nms(same, s).keep.tolist() == [0]  # ties: lower index first
    r = _core.matrix_nms(same, s, kernel="linear")  # duplicates decay to 0, not NaN
    assert r.keep.tolist() == [0, 1, 2] and r.scores.tolist() == [0.5, 0.0, 0.0]


# ---- the choice in the SDK: YOLO head, evaluate, CLI ------------------------------------------------


@pytest.fixture(scope="module")
def yolo() -> object:
    require_shared()
    import edgeseg

    return edgeseg.load(MODELS / "yolov8n-seg.onnx")


def box_set(boxes: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(b) for b in np.round(boxes, 3).tolist()}


def test_yolo_head_honours_nms(yolo) -> None:
    images = sorted(IMAGES.glob("*.jpg"))[:3]
    differs = False
    for path in images:
        default = yolo(path, conf=0.25)
        box = yolo(path, conf=0.25, nms="box")
        for a, b in ((default.boxes, box.boxes), (default.scores, box.scores), (default.masks.data, box.masks.data)):
            np.testing.assert_array_equal(a, b)  # "box" is the default, bit for bit
        fast = yolo(path, conf=0.25, nms="fast")
        # Fast NMS keeps a candidate only when no higher-scored one (kept or not) overlaps it: a subset of what
        # greedy NMS keeps (no max_det cut at conf 0.25).
        assert box_set(fast.boxes) <= box_set(box.boxes)
        matrix = yolo(path, conf=0.25, nms="matrix")
        assert np.all(matrix.scores >= 0.25) and np.all(np.diff(matrix.scores) <= 0)
        for kind in ("fast", "matrix", "mask"):
            r = yolo(path, conf=0.001, nms=kind)
            assert len(r.boxes) == len(r.scores) == len(r.class_ids) == len(r.masks) <= 300
            assert len(r.masks.rle()) == len(r)
            differs |= box_set(r.boxes) != box_set(yolo(path, conf=0.001).boxes)
    assert differs
    with pytest.raises(ValueError, match="nms must be one of"):
        yolo(images[0], nms="soft")


def test_evaluate_and_cli_take_nms(yolo, tmp_path: Path) -> None:
    from edgeseg.cli import build_parser
    from edgeseg.evaluate import evaluate

    data = json.loads(ANNOTATIONS.read_text())
    ids = {e["id"] for e in data["images"][:2]}
    data["images"] = data["images"][:2]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    subset = tmp_path / "two.json"
    subset.write_text(json.dumps(data))
    report = evaluate(yolo, IMAGES, subset, nms="mask", progress=False)
    assert report.nms == "mask" and report.images == 2 and report.mask_map50_95 > 0
    assert evaluate(yolo, IMAGES, subset, progress=False).nms == "box"  # the family's default
    with pytest.raises(ValueError, match="nms"):
        evaluate(yolo, IMAGES, subset, nms="greedy", progress=False)
    parser = build_parser()
    args = parser.parse_args(["eval", "m.onnx", "--images", "i", "--annotations", "a.json", "--nms", "matrix"])
    assert args.nms == "matrix"
    assert parser.parse_args(["predict", "i.jpg", "--nms", "fast"]).nms == "fast"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "m.onnx", "--images", "i", "--annotations", "a.json", "--nms", "soft"])


def test_finish_yolo_suppresses_as_options_say() -> None:
    # The core's tail of every YOLO head: boxes 0 and 1 overlap (IoU 0.53), their masks do not.
    from edgeseg.heads.base import PostprocessOptions

    boxes = np.array([[0, 0, 12, 12], [2, 2, 14, 14], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    protos = np.full((3, 32, 32), -10.0, np.float32)  # prototype k is mask k (logit +10 inside)
    protos[0, :6, :6] = protos[1, 8:14, 8:14] = protos[2, 20:30, 20:30] = 10.0
    candidates = _core.Detections(boxes, scores, np.zeros(3, np.int32), np.eye(3, dtype=np.float32))
    lb = _core.make_letterbox(32, 32, 32, 32)

    def finish(nms: str) -> _core.Instances:
        return _core.finish_yolo(candidates, protos, None, lb, PostprocessOptions(conf=0.1, iou=0.5, nms=nms))

    assert finish("fast").scores.tolist() == pytest.approx([0.9, 0.7])
    assert finish("mask").scores.tolist() == pytest.approx([0.9, 0.8, 0.7])  # masks apart: all kept
    by_matrix = finish("matrix")  # boxes overlap: decayed, not removed
    assert by_matrix.scores[1] == pytest.approx(0.7) and by_matrix.scores[2] < 0.8 * 0.6
    masks = finish("mask").masks
    assert masks.areas.tolist() == [36, 36, 100] and masks.rects.tolist()[1] == [2, 2, 12, 12]
    # box: the decoder suppressed already; finish keeps what it is given
    assert len(finish("box").scores) == 3
    with pytest.raises(ValueError, match="nms must be one of"):
        finish("soft")
