"""The C++ core's NMS and YOLO decoding against straightforward numpy references."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from edgeseg import _core

IS_X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}

# ----------------------------------------------------------------------------------------------
# numpy references


def ref_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes; a zero (or negative) union counts as no overlap."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = float(w) * float(h)
    union = float(a[2] - a[0]) * float(a[3] - a[1]) + float(b[2] - b[0]) * float(b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_nms(boxes, scores, classes, iou, max_det, agnostic) -> list[int]:
    """Greedy NMS: descending score (ties: lower index first), suppress when IoU > iou."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    if classes is None or agnostic:
        classes = np.zeros(n, np.int32)
    keep: list[int] = []
    for i in order:
        if len(keep) >= max_det:
            break
        if any(classes[k] == classes[i] and ref_iou(boxes[k], boxes[i]) > iou for k in keep):
            continue
        keep.append(i)
    return keep


def ref_decode(pred, nc, conf, iou, max_det, topk, agnostic, class_allowed=None):
    """YOLO-seg decode: argmax over all classes, score > conf, class filter, top-k, xyxy, NMS."""
    pred = np.asarray(pred, np.float32)
    scores_all = pred[4 : 4 + nc]
    cls = scores_all.argmax(0).astype(np.int32)
    best = scores_all.max(0)
    cand = np.nonzero(best > np.float32(conf))[0]
    if class_allowed is not None:
        cand = cand[np.asarray(class_allowed, bool)[cls[cand]]]
    cand = np.array(sorted(cand.tolist(), key=lambda a: (-float(best[a]), a)), np.int64)[:topk]
    cx, cy, w, h = (pred[k, cand] for k in range(4))
    two = np.float32(2)
    boxes = np.stack([cx - w / two, cy - h / two, cx + w / two, cy + h / two], 1).astype(np.float32)
    keep = ref_nms(boxes, best[cand], cls[cand], iou, max_det, agnostic)
    a = cand[keep]
    return boxes[keep].reshape(-1, 4), best[a], cls[a], pred[4 + nc :, a].T


def random_boxes(rng: np.random.Generator, n: int, size: float = 100.0) -> np.ndarray:
    xy = rng.uniform(-0.1 * size, size, (n, 2))
    wh = rng.uniform(0.5, 0.4 * size, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def nms(boxes, scores, classes=None, iou=0.5, max_det=300, agnostic=False) -> list[int]:
    out = _core.nms(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        None if classes is None else np.asarray(classes, np.int32),
        iou,
        max_det,
        agnostic,
    )
    assert out.dtype == np.int64
    return out.tolist()


# ----------------------------------------------------------------------------------------------
# NMS


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_random_matches_reference(seed: int, iou: float) -> None:
    rng = np.random.default_rng(seed)
    n = 150
    boxes = random_boxes(rng, n)
    boxes[::17, [0, 2]] = boxes[::17, [2, 0]]  # a few inverted boxes
    boxes[5::23, 2] = boxes[5::23, 0]  # and zero-width ones
    # Coarse scores so that ties occur.
    scores = rng.integers(0, 40, n).astype(np.float32) / 40
    classes = rng.integers(0, 3, n).astype(np.int32)
    for cls, agnostic in [(classes, False), (classes, True), (None, False)]:
        for max_det in [300, 7]:
            got = nms(boxes, scores, cls, iou, max_det, agnostic)
            assert got == ref_nms(boxes, scores, cls, iou, max_det, agnostic)
            assert len(got) <= max_det
            # Kept indices come by descending score, ties by lower index.
            keys = [(-scores[i], i) for i in got]
            assert keys == sorted(keys)


def test_nms_empty_input() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0)) == []
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), agnostic=True) == []


def test_nms_ties_in_score_keep_lower_index_first() -> None:
    boxes = [[0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10], [0, 0, 10, 10]]
    assert nms(boxes, [0.5, 0.5, 0.9, 0.5]) == [2, 0, 1]
    # Identical box with identical score: the later one is suppressed.
    boxes = [[0, 0, 10, 10]] * 3
    assert nms(boxes, [0.5, 0.5, 0.5]) == [0]
    assert nms(boxes, [0.4, 0.5, 0.5]) == [1]


def test_nms_identical_boxes() -> None:
    boxes = np.tile(np.array([[5, 5, 20, 30]], np.float32), (5, 1))
    scores = [0.1, 0.9, 0.3, 0.9, 0.2]
    assert nms(boxes, scores, iou=0.99) == [1]
    # IoU 1 is never strictly above 1: nothing is suppressed.
    assert nms(boxes, scores, iou=1.0) == [1, 3, 2, 4, 0]
    # Different classes do not suppress each other unless agnostic.
    assert nms(boxes, scores, [0, 1, 0, 1, 2]) == [1, 2, 4]
    assert nms(boxes, scores, [0, 1, 0, 1, 2], agnostic=True) == [1]


def test_nms_threshold_is_strict() -> None:
    # IoU exactly 0.5: inter 2, union 4.
    boxes = [[0, 0, 3, 1], [1, 0, 4, 1]]
    assert nms(boxes, [0.9, 0.8], iou=0.5) == [0, 1]
    assert nms(boxes, [0.9, 0.8], iou=0.49) == [0]
    # Touching boxes (zero intersection) never suppress, even at iou=0.
    assert nms([[0, 0, 1, 1], [1, 0, 2, 1]], [0.9, 0.8], iou=0.0) == [0, 1]
    assert nms([[0, 0, 1, 1], [0.5, 0, 2, 1]], [0.9, 0.8], iou=0.0) == [0]


def test_nms_zero_area_boxes() -> None:
    # Points, lines and identical degenerate boxes: zero union counts as no overlap.
    boxes = [[5, 5, 5, 5], [5, 5, 5, 5], [0, 5, 10, 5], [5, 0, 5, 10], [0, 0, 10, 10]]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    for iou in [0.0, 0.5]:
        assert nms(boxes, scores, iou=iou) == [0, 1, 2, 3, 4]
        assert nms(boxes, scores, iou=iou) == ref_nms(np.array(boxes), scores, None, iou, 300, False)


def test_nms_negative_and_out_of_image_coordinates() -> None:
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 80, size=50) - np.float32(1000)
    boxes[::3] += np.float32(5000)  # far outside any image
    scores = rng.random(80).astype(np.float32)
    for iou in [0.1, 0.5]:
        assert nms(boxes, scores, iou=iou) == ref_nms(boxes, scores, None, iou, 300, False)
    # Translation does not change IoU: same result far away (exact in float32 for these values).
    base = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, 0, 6, 4]], np.float32)
    s = [0.9, 0.8, 0.7]
    # IoU(0, 1) = 9/23, IoU(0, 2) = 1/3, IoU(1, 2) = 6/26.
    assert nms(base, s, iou=0.3) == nms(base - 1024, s, iou=0.3) == [0]
    assert nms(base, s, iou=0.35) == nms(base - 1024, s, iou=0.35) == [0, 2]
    assert nms(base, s, iou=0.4) == nms(base - 1024, s, iou=0.4) == [0, 1, 2]


def test_nms_class_aware_vs_agnostic() -> None:
    rng = np.random.default_rng(3)
    n = 120
    boxes = random_boxes(rng, n, size=40)  # crowded: lots of overlap
    scores = rng.random(n).astype(np.float32)
    one = np.zeros(n, np.int32)
    many = rng.integers(0, 10, n).astype(np.int32)
    agnostic = nms(boxes, scores, many, 0.5, 300, True)
    assert agnostic == nms(boxes, scores, one, 0.5, 300, False) == nms(boxes, scores, None, 0.5)
    assert agnostic == nms(boxes, scores, one, 0.5, 300, True)
    aware = nms(boxes, scores, many, 0.5, 300, False)
    assert aware == ref_nms(boxes, scores, many, 0.5, 300, False)
    assert len(aware) > len(agnostic)
    # Class-aware NMS is agnostic NMS within each class.
    for c in range(10):
        idx = np.nonzero(many == c)[0]
        sub = nms(boxes[idx], scores[idx], iou=0.5)
        assert [i for i in aware if many[i] == c] == idx[sub].tolist()
    # Negative and large class ids are just labels.
    weird = np.where(many % 2 == 0, -7, 2**31 - 1).astype(np.int32)
    assert nms(boxes, scores, weird, 0.5) == ref_nms(boxes, scores, weird, 0.5, 300, False)


def test_nms_max_det_truncation() -> None:
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, 60, size=1000)
    scores = rng.random(60).astype(np.float32)
    full = nms(boxes, scores, iou=0.5)
    for max_det in [0, 1, 5, len(full), len(full) + 10]:
        assert nms(boxes, scores, iou=0.5, max_det=max_det) == full[:max_det]


def test_nms_invalid_arguments() -> None:
    b = np.zeros((2, 4), np.float32)
    s = np.zeros(2, np.float32)
    with pytest.raises(ValueError):
        _core.nms(b.astype(np.float64), s)
    with pytest.raises(ValueError):
        _core.nms(b, s.astype(np.float64))
    with pytest.raises(ValueError):
        _core.nms(b[:, :3].copy(), s)
    with pytest.raises(ValueError):
        _core.nms(b, np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        _core.nms(b, s, np.zeros(2, np.int64))
    with pytest.raises(ValueError):
        _core.nms(b, s, np.zeros(3, np.int32))
    with pytest.raises(ValueError):
        _core.nms(b, s, iou=1.5)
    with pytest.raises(ValueError):
        _core.nms(b, s, max_det=-1)
    with pytest.raises(ValueError):
        _core.nms(b, np.array([0.5, np.nan], np.float32))
    with pytest.raises(ValueError):
        _core.nms(np.array([[0, 0, np.inf, 1], [0, 0, 1, 1]], np.float32), s)


def test_nms_accepts_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(5)
    boxes = random_boxes(rng, 50)
    scores = rng.random(50).astype(np.float32)
    wide = np.zeros((50, 8), np.float32)
    wide[:, ::2] = boxes
    got = _core.nms(wide[:, ::2], np.repeat(scores, 2)[::2], None, 0.5, 300, False).tolist()
    assert got == ref_nms(boxes, scores, None, 0.5, 300, False)


# ----------------------------------------------------------------------------------------------
# decode_yolo


def make_pred(rng: np.random.Generator, n: int, nc: int, nm: int, size: float = 640.0) -> np.ndarray:
    """A raw (4 + nc + nm, n) head output with clustered boxes so that NMS has work to do."""
    centres = rng.uniform(0, size, (max(n // 8, 1), 2))
    cxy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(4, size / 4, (max(n // 8, 1), 2))[rng.integers(0, len(centres), n)]
    wh = wh * rng.uniform(0.8, 1.25, (n, 2))
    scores = rng.random((n, nc)) ** 3
    # Quantized scores like an int8 model: ties between the classes of an anchor stay (argmax must
    # pick the first), while a tiny per-anchor offset keeps anchors apart, because equal-score
    # anchors are ordered as PyTorch's argsort orders them (see test_decode_ties_*).
    scores = np.round(scores * 64) / 64 + np.arange(n)[:, None] * 2.0**-22
    coeffs = rng.normal(0, 1, (n, nm))
    return np.concatenate([cxy, wh, scores, coeffs], 1).T.astype(np.float32).copy()


def assert_decode_equal(got, want) -> None:
    boxes, scores, classes, coeffs = got
    rb, rs, rc, rk = want
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert classes.dtype == np.int32 and coeffs.dtype == np.float32
    assert boxes.shape == rb.shape and coeffs.shape == rk.shape
    np.testing.assert_array_equal(boxes, rb)
    np.testing.assert_array_equal(scores, rs)
    np.testing.assert_array_equal(classes, rc)
    np.testing.assert_array_equal(coeffs, rk)


@pytest.mark.parametrize("seed", range(4))
def test_decode_yolo_random_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nc, nm = 5, 8
    pred = make_pred(rng, 1500, nc, nm)
    for conf, iou, agnostic in [(0.25, 0.7, False), (0.1, 0.45, True), (0.0, 0.5, False)]:
        got = _core.decode_yolo(pred, nc, conf, iou, 300, 30000, agnostic)
        want = ref_decode(pred, nc, conf, iou, 300, 30000, agnostic)
        assert_decode_equal(got, want)
        assert len(got[1]) > 5
        assert np.all(got[1] > conf)
        assert np.all(np.diff(got[1]) <= 0)


@pytest.mark.parametrize("seed", range(3))
def test_decode_yolo_transposed_layout(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    nc, nm = 3, 4
    rows = make_pred(rng, 800, nc, nm).T.copy()  # (N, F), anchors as rows
    view = rows.T  # (F, N), non-contiguous
    assert not view.flags.c_contiguous
    got = _core.decode_yolo(view, nc, 0.2, 0.6, 100, 30000, False)
    assert_decode_equal(got, ref_decode(rows.T, nc, 0.2, 0.6, 100, 30000, False))
    # Same answer as the contiguous layout.
    assert_decode_equal(got, _core.decode_yolo(np.ascontiguousarray(view), nc, 0.2, 0.6, 100, 30000, False))
    # A strided column view (every other anchor) too.
    strided = view[:, ::2]
    got = _core.decode_yolo(strided, nc, 0.2, 0.6, 100, 30000, True)
    assert_decode_equal(got, ref_decode(np.ascontiguousarray(strided), nc, 0.2, 0.6, 100, 30000, True))


def test_decode_yolo_pre_nms_topk_cap() -> None:
    rng = np.random.default_rng(21)
    nc, nm = 4, 2
    pred = make_pred(rng, 600, nc, nm)
    for topk in [1, 7, 50, 100000]:
        got = _core.decode_yolo(pred, nc, 0.05, 0.5, 300, topk, False)
        assert_decode_equal(got, ref_decode(pred, nc, 0.05, 0.5, 300, topk, False))
        assert len(got[1]) <= topk
    # Disjoint boxes: NMS keeps every candidate, so exactly the top-k scores survive; which of the
    # anchors tied at the cut survive follows the reference's sort order.
    n = 40
    pred = np.zeros((4 + 2, n), np.float32)
    pred[0] = np.arange(n) * 10 + 5
    pred[1] = 5
    pred[2:4] = 4
    pred[4] = np.repeat(np.linspace(0.9, 0.5, n // 4), 4)
    got = _core.decode_yolo(pred, 2, 0.25, 0.5, 300, 6, False)
    assert got[2].tolist() == [0] * 6
    anchors = ((got[0][:, 0] + 2 - 5) / 10).astype(int)
    assert sorted(anchors[:4].tolist()) == [0, 1, 2, 3]
    assert set(anchors[4:].tolist()) <= {4, 5, 6, 7}


def test_decode_yolo_max_det() -> None:
    rng = np.random.default_rng(4)
    pred = make_pred(rng, 1000, 3, 2)
    full = _core.decode_yolo(pred, 3, 0.1, 0.5, 1000, 30000, False)
    for max_det in [0, 1, 10]:
        got = _core.decode_yolo(pred, 3, 0.1, 0.5, max_det, 30000, False)
        assert_decode_equal(got, tuple(a[:max_det] for a in full))


def test_decode_yolo_class_filter_after_argmax() -> None:
    # Anchor 0: best class 1 (0.9) but class 0 also above conf (0.8). Filtering out class 1 must
    # drop the anchor rather than fall back to class 0.
    pred = np.array(
        [
            [10, 50, 90],
            [10, 10, 10],
            [8, 8, 8],
            [8, 8, 8],
            [0.8, 0.6, 0.1],  # class 0
            [0.9, 0.1, 0.7],  # class 1
            [0.1, 0.2, 0.3],  # class 2
            [1.0, 2.0, 3.0],  # one mask coefficient
        ],
        np.float32,
    )
    allow = np.array([1, 0, 1], np.uint8)
    boxes, scores, classes, coeffs = _core.decode_yolo(pred, 3, 0.25, 0.5, 300, 100, False, allow)
    assert classes.tolist() == [0]
    np.testing.assert_array_equal(scores, np.float32([0.6]))
    np.testing.assert_array_equal(coeffs, np.float32([[2.0]]))
    np.testing.assert_array_equal(boxes, np.float32([[46, 6, 54, 14]]))
    _, _, classes, _ = _core.decode_yolo(pred, 3, 0.25, 0.5, 300, 100, False, None)
    assert classes.tolist() == [1, 1, 0]
    _, _, classes, _ = _core.decode_yolo(pred, 3, 0.25, 0.5, 300, 100, False, np.zeros(3, np.uint8))
    assert classes.tolist() == []


@pytest.mark.parametrize("seed", range(3))
def test_decode_yolo_class_filter_random(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    nc = 6
    pred = make_pred(rng, 900, nc, 3)
    allow = (rng.random(nc) < 0.5).astype(np.uint8)
    for topk in [20, 30000]:
        got = _core.decode_yolo(pred, nc, 0.2, 0.5, 300, topk, False, allow)
        assert_decode_equal(got, ref_decode(pred, nc, 0.2, 0.5, 300, topk, False, allow))
        assert set(got[2].tolist()) <= set(np.nonzero(allow)[0].tolist())


def test_decode_yolo_conf_is_strict_and_no_coeffs() -> None:
    pred = np.array([[10, 30], [10, 10], [4, 4], [4, 4], [0.25, 0.5]], np.float32)
    boxes, scores, classes, coeffs = _core.decode_yolo(pred, 1, 0.25, 0.5, 300, 10, False)
    assert scores.tolist() == [0.5] and classes.tolist() == [0]
    assert coeffs.shape == (1, 0)
    np.testing.assert_array_equal(boxes, np.float32([[28, 8, 32, 12]]))
    # No anchors at all.
    out = _core.decode_yolo(np.zeros((7, 0), np.float32), 1, 0.25, 0.5, 300, 10, False)
    assert [a.shape for a in out] == [(0, 4), (0,), (0,), (0, 2)]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("cls", [0, 2])
def test_decode_yolo_nan_score_raises(transposed: bool, cls: int) -> None:
    rng = np.random.default_rng(9)
    pred = make_pred(rng, 64, 3, 2)
    pred[4 + cls, 17] = np.nan
    if transposed:
        pred = pred.T.copy().T
    with pytest.raises(ValueError, match="NaN"):
        _core.decode_yolo(pred, 3, 0.25, 0.5, 300, 100, False)
    # Even when that class is filtered out.
    allow = np.ones(3, np.uint8)
    allow[cls] = 0
    with pytest.raises(ValueError, match="NaN"):
        _core.decode_yolo(pred, 3, 0.25, 0.5, 300, 100, False, allow)


def test_decode_yolo_invalid_arguments() -> None:
    pred = np.zeros((4 + 2 + 1, 10), np.float32)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred.astype(np.float64), 2, 0.25, 0.5, 300, 100, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred[None], 2, 0.25, 0.5, 300, 100, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 4, 0.25, 0.5, 300, 100, False)  # fewer features than 4 + nc
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 0, 0.25, 0.5, 300, 100, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 2, 1.5, 0.5, 300, 100, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 2, 0.25, -0.1, 300, 100, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 2, 0.25, 0.5, -1, 100, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 2, 0.25, 0.5, 300, 0, False)
    with pytest.raises(ValueError):
        _core.decode_yolo(pred, 2, 0.25, 0.5, 300, 100, False, np.ones(3, np.uint8))
    # NaN box or coefficient of a candidate.
    pred[4, 3] = 0.9
    pred[0, 3] = np.nan
    with pytest.raises(ValueError, match="box"):
        _core.decode_yolo(pred, 2, 0.25, 0.5, 300, 100, False)
    pred[0, 3] = 1
    pred[6, 3] = np.inf
    with pytest.raises(ValueError, match="coefficients"):
        _core.decode_yolo(pred, 2, 0.25, 0.5, 300, 100, False)


def test_decode_yolo_ignores_non_finite_values_of_rejected_anchors() -> None:
    pred = np.zeros((4 + 2 + 1, 4), np.float32)
    pred[:4] = [[10, 30, 50, 70], [10, 10, 10, 10], [4, 4, 4, 4], [4, 4, 4, 4]]
    pred[4] = [0.9, 0.1, 0.1, 0.1]
    pred[0, 1] = np.nan  # below conf
    pred[6, 2] = np.inf  # below conf
    _, scores, _, coeffs = _core.decode_yolo(pred, 2, 0.25, 0.5, 300, 100, False)
    assert scores.tolist() == [np.float32(0.9)] and coeffs.tolist() == [[0.0]]


# ----------------------------------------------------------------------------------------------
# decode_yolo_e2e


def ref_decode_e2e(rows, nc, conf, max_det, class_allowed=None):
    keep = []
    for r, row in enumerate(rows):
        if len(keep) >= max_det:
            break
        if not row[4] > np.float32(conf):
            continue
        c = round(float(row[5]))
        if class_allowed is not None and not class_allowed[c]:
            continue
        keep.append(r)
    keep = np.array(keep, np.int64)
    return (
        rows[keep, :4].reshape(-1, 4),
        rows[keep, 4],
        np.rint(rows[keep, 5]).astype(np.int32),
        rows[keep, 6:].reshape(len(keep), rows.shape[1] - 6),
    )


@pytest.mark.parametrize("seed", range(3))
def test_decode_yolo_e2e_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    k, nc, nm = 300, 7, 5
    xy = rng.uniform(0, 600, (k, 2))
    rows = np.concatenate(
        [
            xy,
            xy + rng.uniform(1, 100, (k, 2)),
            np.round(rng.random((k, 1)) * 32) / 32,
            rng.integers(0, nc, (k, 1)),
            rng.normal(0, 1, (k, nm)),
        ],
        1,
    ).astype(np.float32)
    allow = (rng.random(nc) < 0.6).astype(np.uint8)
    for conf in [0.0, 0.25, 0.5, 1.0]:
        for max_det in [0, 3, 300]:
            for flt in [None, allow]:
                got = _core.decode_yolo_e2e(rows, nc, conf, max_det, flt)
                assert_decode_equal(got, ref_decode_e2e(rows, nc, conf, max_det, flt))
    # A non-contiguous view gives the same result.
    wide = np.zeros((k, 2 * rows.shape[1]), np.float32)
    wide[:, ::2] = rows
    assert_decode_equal(
        _core.decode_yolo_e2e(wide[:, ::2], nc, 0.25, 300, allow), ref_decode_e2e(rows, nc, 0.25, 300, allow)
    )


def test_decode_yolo_e2e_edge_cases() -> None:
    rows = np.array(
        [
            [0, 0, 10, 10, 0.9, 1.0, 0.5],
            [5, 5, 15, 15, 0.25, 0.0, 0.1],  # at conf: dropped
            [1, 1, 2, 2, 0.1, 0.0, 0.2],  # below conf: dropped
            [2, 2, 3, 3, 0.3, 2.0, 0.3],
        ],
        np.float32,
    )
    boxes, scores, classes, coeffs = _core.decode_yolo_e2e(rows, 3, 0.25, 300)
    assert classes.tolist() == [1, 2]
    np.testing.assert_array_equal(scores, np.float32([0.9, 0.3]))
    np.testing.assert_array_equal(coeffs, np.float32([[0.5], [0.3]]))
    np.testing.assert_array_equal(boxes, rows[[0, 3], :4])
    # Rows keep their order (no sorting by score).
    _, scores, _, _ = _core.decode_yolo_e2e(rows[::-1], 3, 0.25, 300)
    np.testing.assert_array_equal(scores, np.float32([0.3, 0.9]))
    # No coefficients.
    out = _core.decode_yolo_e2e(rows[:, :6].copy(), 3, 0.25, 300)
    assert out[3].shape == (2, 0)
    # Empty.
    out = _core.decode_yolo_e2e(np.zeros((0, 38), np.float32), 80, 0.25, 300)
    assert [a.shape for a in out] == [(0, 4), (0,), (0,), (0, 32)]
    # Errors: class out of range, too few columns, wrong dtype, bad filter length, NaN box.
    with pytest.raises(ValueError):
        _core.decode_yolo_e2e(rows, 2, 0.25, 300)
    with pytest.raises(ValueError):
        _core.decode_yolo_e2e(rows[:, :5].copy(), 3, 0.25, 300)
    with pytest.raises(ValueError):
        _core.decode_yolo_e2e(rows.astype(np.float64), 3, 0.25, 300)
    with pytest.raises(ValueError):
        _core.decode_yolo_e2e(rows, 3, 0.25, 300, np.ones(2, np.uint8))
    bad = rows.copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError):
        _core.decode_yolo_e2e(bad, 3, 0.25, 300)
    # A NaN score never turns into a detection (whether the core drops the row or raises).
    bad = rows.copy()
    bad[:, 4] = np.nan
    try:
        out = _core.decode_yolo_e2e(bad, 3, 0.25, 300)
    except ValueError:
        pass
    else:
        assert len(out[1]) == 0


def test_nms_iou_equal_to_threshold_does_not_suppress() -> None:
    # Box b inside box a: IoU = wb / wa exactly. Suppression iff the ratio is above the threshold.
    scores = np.array([0.9, 0.8], np.float32)
    for wa in range(1, 31):
        for wb in range(1, wa + 1):
            boxes = np.array([[0, 0, wa, 1], [0, 0, wb, 1]], np.float32)
            for pct in [30, 45, 50, 60, 65, 70, 75, 80, 90]:
                got = _core.nms(boxes, scores, None, pct / 100, 300, False).tolist()
                assert got == ([0] if wb * 100 > pct * wa else [0, 1]), (wa, wb, pct)


def test_nms_huge_finite_coordinates() -> None:
    boxes = np.array([[0, 0, 1e20, 1e20], [0, 0, 1e20, 1e20]], np.float32)
    assert np.isfinite(boxes).all()
    assert ref_nms(boxes, [0.9, 0.8], None, 0.5, 300, False) == [0]
    assert nms(boxes, [0.9, 0.8], iou=0.5) == [0]


@pytest.mark.parametrize(
    "cls",
    [
        2.0**32,
        -(2.0**32),
        1e30,  # beyond the range of long: lround would be undefined
    ],
)
def test_decode_yolo_e2e_huge_class_id_raises(cls: float) -> None:
    rows = np.array([[0, 0, 10, 10, 0.9, cls]], np.float32)
    with pytest.raises(ValueError, match="class id"):
        _core.decode_yolo_e2e(rows, 3, 0.25, 300)


def test_decode_ties_small_keep_anchor_order() -> None:
    """Equal scores: with up to 16 candidates the reference's sort (libstdc++'s introsort, which
    PyTorch's CPU argsort uses) is an insertion sort, so tied anchors keep their order."""
    nc, nm, n = 2, 1, 12
    pred = np.zeros((4 + nc + nm, n), np.float32)
    pred[0] = 100.0  # every box the same: NMS keeps only the first of the tied anchors
    pred[1] = 100.0
    pred[2:4] = 20.0
    pred[4] = 0.5
    _boxes, scores, _classes, _ = _core.decode_yolo(pred, nc, 0.25, 0.7, 300, 30000, False)
    assert len(scores) == 1 and scores[0] == np.float32(0.5)
    # Which anchor won shows in its coefficient.
    pred[6] = np.arange(n)
    assert _core.decode_yolo(pred, nc, 0.25, 0.7, 300, 30000, False)[3][0, 0] == 0


def test_decode_ties_many_keep_one_of_each_cluster() -> None:
    """With many tied candidates the order among ties follows the reference's sort; whatever it is,
    each cluster of identical boxes yields exactly one detection with the tied score."""
    nc, nm, clusters, per = 1, 1, 40, 10
    n = clusters * per
    pred = np.zeros((4 + nc + nm, n), np.float32)
    cluster = np.arange(n) % clusters
    pred[0] = 20.0 + 50.0 * cluster
    pred[1] = 20.0
    pred[2:4] = 10.0
    pred[4] = 0.75
    pred[5] = np.arange(n)
    _boxes, scores, _, coeffs = _core.decode_yolo(pred, nc, 0.25, 0.7, 300, 30000, False)
    assert len(scores) == clusters and np.all(scores == np.float32(0.75))
    assert sorted(cluster[coeffs[:, 0].astype(int)].tolist()) == list(range(clusters))
