"""The C++ tracker (through edgeseg.track.Tracker and edgeseg._core) against the numpy reference in
track_reference.py on hand-made trajectories, the core's linear assignment and mask IoU against brute
force, and bad input."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from edgeseg import _core
from edgeseg.masks import InstanceMasks
from edgeseg.result import Result
from edgeseg.track import Track, Tracker, TrackerConfig

from track_reference import (
    Mask,
    RefTracker,
    assignment_objective,
    brute_force_assignment,
    mask_iou,
)

H, W = 160, 240


# ---- scenes ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Det:
    """One detection of a hand-made frame: the object's ground-truth id, its box and score; the mask is a
    filled box unless `shape` draws one into a full-image canvas."""

    gt: int
    box: tuple[float, float, float, float]
    score: float = 0.9
    cls: int = 0
    shape: str = "box"


def draw(det: Det) -> np.ndarray:
    x1, y1, x2, y2 = (round(v) for v in det.box)
    yy, xx = np.mgrid[0:H, 0:W]
    inside = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
    if det.shape == "box":
        return inside
    u, v = xx - x1, yy - y1
    if det.shape == "\\":
        return inside & (np.abs(u - v) <= 12)
    if det.shape == "/":
        return inside & (np.abs(u + v - (x2 - x1)) <= 12)
    if det.shape == "disc":
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, min(x2 - x1, y2 - y1) / 2
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    raise AssertionError(det.shape)


def make_result(dets: list[Det], with_masks: bool = True) -> Result:
    n = len(dets)
    boxes = np.array([d.box for d in dets], np.float32).reshape(n, 4)
    masks = InstanceMasks.from_dense(np.array([draw(d) for d in dets]).reshape(n, H, W)) if with_masks and n else None
    if masks is None:
        masks = InstanceMasks.empty((H, W))
    return Result(
        boxes=boxes,
        scores=np.array([d.score for d in dets], np.float32),
        class_ids=np.array([d.cls for d in dets], np.int32),
        names=("a", "b", "c"),
        masks=masks,
        image_shape=(H, W),
    )


def ref_masks(result: Result) -> list[Mask] | None:
    if len(result.masks) == 0:
        return None
    return [Mask(int(r[0]), int(r[1]), result.masks[i].astype(bool)) for i, r in enumerate(result.masks.rects)]


def run_both(frames: list[list[Det]], with_masks: bool = True, **config) -> list[np.ndarray]:
    """Feeds every frame to the C++ tracker and the reference; asserts equal ids, classes and track states
    frame by frame; returns the C++ ids of each frame."""
    tracker = Tracker(**config)
    assoc = config.pop("association", "mask")
    ref = RefTracker(**config, use_masks=assoc == "mask")
    out = []
    for k, dets in enumerate(frames):
        result = make_result(dets, with_masks)
        got = tracker.update(result)
        ids, cls = ref.update(result.boxes, result.scores, result.class_ids, ref_masks(result))
        assert got.track_ids.dtype == np.int64 and got.track_classes.dtype == np.int32
        np.testing.assert_array_equal(got.track_ids, ids, err_msg=f"ids differ at frame {k}")
        np.testing.assert_array_equal(got.track_classes, cls, err_msg=f"classes differ at frame {k}")
        tracks, expected = tracker.tracks, ref.confirmed()
        assert [t.id for t in tracks] == [t.id for t in expected], f"tracks differ at frame {k}"
        for t, e in zip(tracks, expected):
            m = e.kf.mean
            box = [m[0] - m[2] / 2, m[1] - m[3] / 2, m[0] + m[2] / 2, m[1] + m[3] / 2]
            np.testing.assert_allclose(t.box, box, rtol=1e-5, atol=1e-3, err_msg=f"track {t.id} at frame {k}")
            assert (t.hits, t.lost, t.class_id) == (e.hits, e.lost, e.voted)
            assert t.time_since_update == ref.frame - e.last_frame
            assert t.age == ref.frame - e.start_frame + 1
        assert tracker.frame_count == k + 1
        out.append(got.track_ids)
    return out


def gt_consistent(frames: list[list[Det]], ids: list[np.ndarray]) -> bool:
    """Every ground-truth object keeps one id and no two objects share one (ignoring -1)."""
    seen: dict[int, int] = {}
    for dets, frame_ids in zip(frames, ids):
        for d, i in zip(dets, frame_ids.tolist()):
            if i < 0:
                continue
            if seen.setdefault(d.gt, i) != i:
                return False
    return len(set(seen.values())) == len(seen)


def moving(gt: int, x: float, y: float, vx: float, vy: float, t: int, size=(30, 24), **kw) -> Det:
    cx, cy = x + vx * t, y + vy * t
    return Det(gt, (cx, cy, cx + size[0], cy + size[1]), **kw)


ASSOCIATIONS = ["box", "mask"]


@pytest.mark.parametrize("association", ASSOCIATIONS)
def test_crossing(association):
    frames = [[moving(1, 10, 60, 6, 0.5, t), moving(2, 200, 70, -6, -0.5, t)] for t in range(30)]
    ids = run_both(frames, association=association)
    assert gt_consistent(frames, ids)
    assert ids[0].tolist() == [1, 2] and ids[-1].tolist() == [1, 2]


@pytest.mark.parametrize("association", ASSOCIATIONS)
def test_occlusion_shorter_than_lost_frames_keeps_the_id(association):
    frames = [[moving(1, 10, 60, 5, 1, t, shape="disc")] if not 8 <= t < 14 else [] for t in range(24)]
    ids = run_both(frames, association=association, lost_frames=6)
    assert ids[7].tolist() == [1] and ids[14].tolist() == [1] and ids[-1].tolist() == [1]


@pytest.mark.parametrize("association", ASSOCIATIONS)
def test_occlusion_longer_than_lost_frames_gives_a_new_id(association):
    frames = [[moving(1, 10, 60, 5, 1, t)] if not 8 <= t < 15 else [] for t in range(24)]
    ids = run_both(frames, association=association, lost_frames=6)
    assert ids[7].tolist() == [1] and ids[15].tolist() == [2]


def test_reentry_elsewhere_is_a_new_track_and_lost_tracks_expire():
    # Object 1 leaves on the right; object 2 enters on the left while 1 is still lost; ids never reused.
    frames = [[moving(1, 150, 50, 8, 0, t)] for t in range(8)]
    frames += [[] for _ in range(3)]
    frames += [[moving(2, 0, 50, 8, 0, t)] for t in range(10)]
    ids = run_both(frames, lost_frames=5)
    assert ids[0].tolist() == [1] and ids[11].tolist() == [2] and ids[-1].tolist() == [2]
    tracker = Tracker(lost_frames=5)
    for dets in frames:
        tracker.update(make_result(dets))
    assert [t.id for t in tracker.tracks] == [2]


def test_low_score_detections_are_rescued_by_the_second_stage():
    frames = []
    for t in range(20):
        score = 0.3 if 6 <= t < 12 else 0.9
        frames.append([moving(1, 10, 40, 4, 2, t, score=score), moving(3, 150, 100, 0, 0, t, score=0.3)])
    ids = run_both(frames)
    assert all(f[0] == 1 for f in ids)  # kept through the low-score frames
    assert all(f[1] == -1 for f in ids)  # a low-score detection alone never starts a track
    # Without the second stage (low_thresh = high_thresh) the track is lost for those frames: found again
    # with its id when the buffer is long enough, replaced by a new one when not.
    ids = run_both(frames, low_thresh=0.5)
    assert ids[6].tolist() == [-1, -1] and ids[12][0] == 1
    ids = run_both(frames, low_thresh=0.5, lost_frames=3)
    assert ids[6].tolist() == [-1, -1] and ids[12][0] == 2


def test_min_hits_activation_and_flicker():
    frames = [[moving(1, 10, 40, 3, 0, t)] + ([moving(2, 150, 100, 0, 0, t)] if t == 1 else []) for t in range(8)]
    ids = run_both(frames, min_hits=3)
    assert [f[0] for f in ids] == [-1, -1, 1, 1, 1, 1, 1, 1]
    assert ids[1].tolist() == [-1, -1]  # the one-frame flicker never gets (or uses up) an id
    # Consecutive hits: a tentative track missing one frame starts over.
    frames = [[moving(1, 10, 40, 3, 0, t)] if t != 1 else [] for t in range(6)]
    ids = run_both(frames, min_hits=2)
    assert [f.tolist() for f in ids] == [[-1], [], [-1], [1], [1], [1]]


def test_class_vote():
    classes = [0, 0, 1, 1, 2, 1, 1, 0, 0, 0]
    frames = [[moving(1, 10, 40, 3, 0, t, cls=c)] for t, c in enumerate(classes)]
    tracker = Tracker()
    voted = [int(tracker.update(make_result(f)).track_classes[0]) for f in frames]
    # 0,0 -> 0; 0,0,1 -> 0; 2-2 tie -> most recent (1); ... 4-3 for 1 then 4-4 tie -> most recent (0)
    assert voted == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    run_both(frames)


def test_mask_association_separates_what_box_association_confuses():
    # Two crossing bars ("\\" and "/", parts lying across each other on a vibrating belt) swap places
    # every frame: each object's new box is exactly the other's old box, while each mask keeps
    # overlapping its own previous mask far more than the other bar.
    frames = []
    for t in range(10):
        a, b = (40, 46) if t % 2 == 0 else (46, 40)
        frames.append([Det(1, (a, 40, a + 60, 100), shape="\\"), Det(2, (b, 40, b + 60, 100), shape="/")])
    box_ids = run_both(frames, association="box")
    mask_ids = run_both(frames, association="mask")
    assert gt_consistent(frames, mask_ids)
    assert all(f.tolist() == [1, 2] for f in mask_ids)
    assert not gt_consistent(frames, box_ids)


@pytest.mark.parametrize("association", ASSOCIATIONS)
def test_an_object_detected_as_two_classes_gets_one_track(association):
    # Class-aware NMS keeps one box per class: a part seen as "bracket" (0.9) and "bolt" (0.7) arrives
    # twice. The second detection starts no track (it would be counted twice); the part's id holds.
    frames = []
    for t in range(8):
        x = 20 + 5 * t
        frames.append([moving(1, 20, 30, 5, 0, t, cls=0), Det(1, (x + 1, 30, x + 31, 54), score=0.7, cls=1)])
    ids = run_both(frames, association=association, new_track_thresh=0.6)
    assert all(f.tolist() == [1, -1] for f in ids)
    assert gt_consistent(frames, ids)
    # With the check off, the duplicate gets its own track.
    ids = run_both(frames, association=association, new_track_thresh=0.6, duplicate_iou=1.0)
    assert ids[0].tolist() == [1, 2]


def test_detections_without_masks_fall_back_to_box_iou():
    frames = [[moving(1, 10, 40, 3, 1, t), moving(2, 150, 40, -3, 1, t)] for t in range(12)]
    with_masks = run_both(frames)
    without = run_both(frames, with_masks=False)
    assert [f.tolist() for f in with_masks] == [f.tolist() for f in without]


def test_camera_warp_moves_predictions():
    # The whole scene shifts 30 px a frame (a panning camera): far beyond box overlap, so without the
    # warp every frame starts a new track; with the warp the id holds. The reference applies the same warp.
    warp = np.array([[1, 0, 30], [0, 1, 0]], np.float32)
    core = _core.Tracker(use_masks=False)
    ref = RefTracker(use_masks=False)
    for t in range(6):
        boxes = np.array([[10 + 30 * t, 40, 30 + 30 * t, 60]], np.float32)
        scores = np.array([0.9], np.float32)
        ids, _ = core.update(boxes, scores, warp=None if t == 0 else warp)
        rids, _ = ref.update(boxes, scores, warp=None if t == 0 else warp)
        assert ids.tolist() == rids.tolist() == [1]
        m = ref.confirmed()[0].kf.mean
        np.testing.assert_allclose(core.tracks()["boxes"][0], [m[0] - m[2] / 2, m[1] - m[3] / 2,
                                   m[0] + m[2] / 2, m[1] + m[3] / 2], atol=1e-3)  # fmt: skip
    no_warp = _core.Tracker(use_masks=False)
    ids = [no_warp.update(np.array([[10 + 30 * t, 40, 30 + 30 * t, 60]], np.float32), np.array([0.9], np.float32))[0]
           for t in range(3)]  # fmt: skip
    assert [int(i[0]) for i in ids] == [1, 2, 3]


def test_camera_motion_compensation_from_frames():
    rng = np.random.default_rng(0)
    scene = (rng.random((H + 40, W + 80)) * 255).astype(np.uint8)
    import cv2

    scene = cv2.GaussianBlur(scene, (5, 5), 0)
    tracker = Tracker(association="box", cmc=True)
    ids = []
    for t in range(6):
        image = np.ascontiguousarray(scene[20:-20, 12 * t : 12 * t + W])  # camera pans 12 px right
        x = 100 - 12 * t  # a static object drifts left in the image; box 16 px wide: no IoU without CMC
        result = make_result([Det(1, (x, 60, x + 16, 76))], with_masks=False)
        ids.append(int(tracker.update(result, image).track_ids[0]))
    assert ids == [1] * 6
    with pytest.raises(ValueError, match="image"):
        tracker.update(make_result([]), np.zeros((10, 10), np.uint8))


def test_empty_frames_reset_and_tracks():
    tracker = Tracker()
    empty = tracker.update(make_result([]))
    assert empty.track_ids.shape == (0,) and empty.track_classes.shape == (0,)
    r = tracker.update(make_result([moving(1, 10, 10, 0, 0, 0, cls=2)]))
    assert r.track_ids.tolist() == [1] and r.track_classes.tolist() == [2]
    (t,) = tracker.tracks
    assert isinstance(t, Track) and t.id == 1 and t.class_id == 2 and t.hits == 1 and t.age == 1 and not t.lost
    assert t.box.dtype == np.float32 and t.box.shape == (4,)
    np.testing.assert_allclose(t.box, [10, 10, 40, 34], atol=1e-4)
    tracker.update(make_result([]))
    assert tracker.tracks[0].lost and tracker.tracks[0].time_since_update == 1
    tracker.reset()
    assert tracker.frame_count == 0 and tracker.tracks == []
    assert tracker.update(make_result([moving(1, 90, 90, 0, 0, 0)])).track_ids.tolist() == [1]


# ---- linear assignment and mask IoU ------------------------------------------------------------


def check_assignment(cost: np.ndarray, max_cost: float) -> None:
    got = _core.linear_assignment(cost, max_cost)
    assert got.dtype == np.int64 and got.shape == (cost.shape[0],)
    cols = got[got >= 0]
    assert len(set(cols.tolist())) == len(cols) and np.all(cols < cost.shape[1])
    for r, c in enumerate(got):
        if c >= 0:
            assert cost[r, c] <= max_cost
    expected = brute_force_assignment(cost, max_cost)
    assert assignment_objective(cost, got, max_cost) == pytest.approx(
        assignment_objective(cost, np.array(expected), max_cost), abs=1e-5
    )


def test_linear_assignment_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(300):
        rows, cols = rng.integers(0, 7, size=2)
        cost = rng.random((rows, cols)).astype(np.float32)
        if rng.random() < 0.3:
            cost[rng.random((rows, cols)) < 0.3] = np.inf
        check_assignment(cost, float(rng.choice([0.3, 0.6, 0.9, 2.0])))


def test_linear_assignment_special_cases():
    # all forbidden
    assert _core.linear_assignment(np.full((3, 4), 0.9, np.float32), 0.5).tolist() == [-1, -1, -1]
    assert _core.linear_assignment(np.full((2, 2), np.inf, np.float32), 0.5).tolist() == [-1, -1]
    # empty shapes
    assert _core.linear_assignment(np.zeros((0, 5), np.float32), 0.5).shape == (0,)
    assert _core.linear_assignment(np.zeros((3, 0), np.float32), 0.5).tolist() == [-1, -1, -1]
    # ties: every complete matching is optimal; it must be a complete one
    got = _core.linear_assignment(np.full((4, 3), 0.25, np.float32), 0.5)
    assert sorted(got[got >= 0].tolist()) == [0, 1, 2]
    # one good pair beats two mediocre ones (the cost limit is a price for leaving rows unmatched)
    cost = np.array([[0.1, 0.7], [0.7, 5.0]], np.float32)
    assert _core.linear_assignment(cost, 0.8).tolist() == [0, -1]
    # a larger dense case: every row fits in one component
    rng = np.random.default_rng(2)
    for rows, cols in itertools.product((5, 6), (4, 7)):
        check_assignment((rng.random((rows, cols)) * 0.2).astype(np.float32), 0.5)


def random_crops(rng, n: int) -> InstanceMasks:
    rects, crops = [], []
    for _ in range(n):
        w, h = int(rng.integers(0, 90)), int(rng.integers(0, 12))
        rects.append((int(rng.integers(-5, 40)), int(rng.integers(-5, 20)), w, h))
        crops.append(rng.random((h, w)) < 0.5)
    return InstanceMasks.from_crops(np.array(rects, np.int32).reshape(-1, 4), crops, (64, 160))


def test_mask_iou_against_dense():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = random_crops(rng, 5), random_crops(rng, 6)
        shifts = rng.integers(-40, 40, size=(5, 2)).astype(np.int64)
        got = _core.mask_iou(a.rects, a.offsets, a.data, b.rects, b.offsets, b.data, shifts)
        ma = [Mask(int(r[0]), int(r[1]), a[i].astype(bool)) for i, r in enumerate(a.rects)]
        mb = [Mask(int(r[0]), int(r[1]), b[j].astype(bool)) for j, r in enumerate(b.rects)]
        want = [[mask_iou(x, int(s[0]), int(s[1]), y) for y in mb] for x, s in zip(ma, shifts)]
        np.testing.assert_allclose(got, np.array(want).reshape(5, 6), rtol=0, atol=1e-12)


def test_mask_iou_ignores_padding_garbage():
    m = InstanceMasks.from_crops(np.array([[0, 0, 3, 2]], np.int32), [np.ones((2, 3), bool)], (4, 4))
    dirty = m.data | np.uint8(0xF8)  # bits past the width of 3
    iou = _core.mask_iou(m.rects, m.offsets, dirty, m.rects, m.offsets, m.data)
    assert iou.tolist() == [[1.0]]


# ---- bad input ---------------------------------------------------------------------------------

BOX = np.array([[10, 10, 20, 20]], np.float32)
SCORE = np.array([0.9], np.float32)


@pytest.mark.parametrize(
    ("boxes", "scores", "message"),
    [
        (np.array([[np.nan, 0, 1, 1]], np.float32), SCORE, "NaN, infinite or out-of-range"),
        (np.array([[0, 0, np.inf, 1]], np.float32), SCORE, "NaN, infinite or out-of-range"),
        (np.array([[0, 0, 3e9, 1]], np.float32), SCORE, "out-of-range"),
        (np.array([[5, 0, 1, 1]], np.float32), SCORE, "x2 < x1"),
        (np.array([[0, 5, 1, 1]], np.float32), SCORE, "y2 < y1"),
        (BOX, np.array([1.5], np.float32), r"score 0 must be in \[0, 1\]"),
        (BOX, np.array([-0.1], np.float32), r"must be in \[0, 1\]"),
        (BOX, np.array([np.nan], np.float32), r"must be in \[0, 1\]"),
        (BOX, np.array([0.9, 0.8], np.float32), "same length"),
        (BOX.astype(np.float64), SCORE, "dtype float32"),
        (BOX[:, :3], SCORE, r"shape \(N, 4\)"),
        (BOX[0], SCORE, "2 dimensions"),
        ([[1, 2, 3, 4]], SCORE, "numpy array"),
    ],
)
def test_core_rejects_bad_detections(boxes, scores, message):
    tracker = _core.Tracker()
    tracker.update(BOX, SCORE)
    with pytest.raises(ValueError, match=message):
        tracker.update(boxes, scores)
    assert tracker.frame == 1  # a rejected frame changes nothing
    assert tracker.update(BOX, SCORE)[0].tolist() == [1]


def good_masks():
    m = InstanceMasks.from_crops(np.array([[10, 10, 10, 10]], np.int32), [np.ones((10, 10), bool)], (40, 40))
    return m.rects.copy(), m.offsets.copy(), m.data.copy()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r, o, b: (r, o + 1, b), "offsets"),
        (lambda r, o, b: (r, np.array([0, 5], np.int64), b), "offsets do not match"),
        (lambda r, o, b: (r, np.array([-2, 18], np.int64), b), ">= 0"),
        (lambda r, o, b: (r, o, b[:5]), "offsets do not match"),
        (lambda r, o, b: (np.array([[10, 10, -10, 10]], np.int32), o, b), "negative width"),
        (lambda r, o, b: (np.array([[10, 10, 10, 10]] * 2, np.int32), o, b), "rects of shape"),
        (lambda r, o, b: (r, o.astype(np.int32), b), "dtype int64"),
        (lambda r, o, b: (r, o, b.astype(np.int8)), "dtype uint8"),
        (lambda r, o, b: (r, None, b), "give all or none"),
    ],
)
def test_core_rejects_bad_masks(edit, message):
    rects, offsets, bits = edit(*good_masks())
    with pytest.raises(ValueError, match=message):
        _core.Tracker().update(BOX, SCORE, None, rects, offsets, bits)


@pytest.mark.parametrize(
    ("warp", "message"),
    [
        (np.array([[1, 0, np.nan], [0, 1, 0]], np.float32), "warp entry 2"),
        (np.array([[np.inf, 0, 0], [0, 1, 0]], np.float32), "warp entry 0"),
        (np.array([[100, 0, 0], [0, 1, 0]], np.float32), "2x2 part"),
        (np.zeros((2, 3), np.float32), "positive determinant"),
        (np.array([[-1, 0, 0], [0, 1, 0]], np.float32), "positive determinant"),
        (np.eye(3, dtype=np.float32), r"shape \(2, 3\)"),
        (np.eye(2, 3), "dtype float32"),
    ],
)
def test_core_rejects_bad_warps(warp, message):
    with pytest.raises(ValueError, match=message):
        _core.Tracker().update(BOX, SCORE, warp=warp)


def test_core_rejects_bad_classes_and_options():
    with pytest.raises(ValueError, match="class id 0 must be >= 0"):
        _core.Tracker().update(BOX, SCORE, np.array([-1], np.int32))
    with pytest.raises(ValueError, match="same length"):
        _core.Tracker().update(BOX, SCORE, np.array([1, 2], np.int32))
    for kwargs, message in [
        ({"high_thresh": 1.5}, r"high_thresh must be in \[0, 1\]"),
        ({"match_iou": float("nan")}, r"match_iou must be in \[0, 1\]"),
        ({"low_thresh": 0.8, "high_thresh": 0.5}, "must not exceed"),
        ({"min_hits": 0}, "min_hits must be >= 1"),
        ({"lost_frames": -1}, "lost_frames must be >= 0"),
        ({"lost_frames": 2**70}, "out of range"),
        ({"lost_frames": 1.5}, "must be an integer"),
        ({"fuse_score": "yes"}, "True or False"),
        ({"bogus": 1}, "unknown tracker option"),
    ]:
        with pytest.raises(ValueError, match=message):
            _core.Tracker(**kwargs)
    with pytest.raises(ValueError, match="max_cost must be finite"):
        _core.linear_assignment(np.zeros((2, 2), np.float32), float("inf"))
    with pytest.raises(ValueError, match="NaN or -inf"):
        _core.linear_assignment(np.array([[0, np.nan]], np.float32), 0.5)
    with pytest.raises(ValueError, match="NaN or -inf"):
        _core.linear_assignment(np.array([[0, -np.inf]], np.float32), 0.5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"high_thresh": 2}, r"TrackerConfig.high_thresh must be in \[0, 1\], got 2"),
        ({"low_thresh": "0.1"}, "TrackerConfig.low_thresh must be a number"),
        ({"low_thresh": 0.7}, "must not exceed high_thresh"),
        ({"min_hits": 0}, r"TrackerConfig.min_hits must be an integer in \[1, 2\^63\), got 0"),
        ({"lost_frames": 2.0}, "TrackerConfig.lost_frames must be an integer"),
        ({"association": "iou"}, "'mask' or 'box'"),
        ({"cmc": 1}, "TrackerConfig.cmc must be True or False"),
        ({"colour": 1}, "unknown TrackerConfig field"),
    ],
)
def test_python_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        Tracker(**overrides)


def test_python_tracker_bad_results():
    tracker = Tracker()
    r = make_result([moving(1, 10, 10, 0, 0, 0), moving(2, 60, 10, 0, 0, 0)])
    with pytest.raises(ValueError, match="2 masks for 1 instances"):
        tracker.update(dataclasses.replace(r, boxes=r.boxes[:1], scores=r.scores[:1], class_ids=r.class_ids[:1]))
    with pytest.raises(ValueError, match="class_ids must hold integers"):
        tracker.update(dataclasses.replace(r, class_ids=r.class_ids.astype(np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        tracker.update(dataclasses.replace(r, boxes=np.full((2, 4), np.nan, np.float32)))
    assert tracker.frame_count == 0
    # float64 boxes from a hand-made Result are accepted (converted once)
    assert tracker.update(dataclasses.replace(r, boxes=r.boxes.astype(np.float64))).track_ids.tolist() == [1, 2]


def test_config_object_and_overrides():
    config = TrackerConfig(min_hits=2, association="box")
    tracker = Tracker(config, lost_frames=3)
    assert tracker.config == dataclasses.replace(config, lost_frames=3)
    assert _core.Tracker(min_hits=2).options["min_hits"] == 2
