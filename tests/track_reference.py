"""A plain numpy transcription of the core tracker (csrc/src/track.cpp; rules in track.hpp), for tests only.

Written for clarity, not speed: full 8x8 Kalman matrices, dense mask crops, brute-force assignment
(scipy is not a dependency). The tests run it next to the C++ tracker on hand-made trajectories and
compare ids, classes and Kalman states frame by frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STD_POS = 1.0 / 20.0
STD_VEL = 1.0 / 160.0
MIN_SCALE = 1e-3
MAX_STATE = 2.0**40


def llround(v: float) -> int:
    """C's llround: halves away from zero (numpy's round goes to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def best_matching(n_rows: int, edges: list[tuple[int, int, float]]) -> list[int]:
    """Per row the column of the matching minimizing the sum of edge weights (all <= 0), by brute force."""
    by_row: list[list[tuple[int, float]]] = [[] for _ in range(n_rows)]
    for r, c, w in edges:
        by_row[r].append((c, w))
    best = [0.0, [-1] * n_rows]

    def search(r: int, used: set, total: float, cur: list[int]) -> None:
        if r == n_rows:
            if total < best[0] - 1e-12:
                best[0], best[1] = total, list(cur)
            return
        search(r + 1, used, total, cur)  # row r unmatched
        for c, w in by_row[r]:
            if c not in used:
                used.add(c)
                cur[r] = c
                search(r + 1, used, total + w, cur)
                cur[r] = -1
                used.discard(c)

    search(0, set(), 0.0, [-1] * n_rows)
    return best[1]


def assignment_objective(cost: np.ndarray, rows_to_cols: np.ndarray, max_cost: float) -> float:
    """Sum of (cost - max_cost) over the matched pairs."""
    return float(sum(float(cost[r, c]) - max_cost for r, c in enumerate(rows_to_cols) if c >= 0))


def brute_force_assignment(cost: np.ndarray, max_cost: float) -> list[int]:
    """Reference for linear_assignment: pairs costing <= max_cost, minimum sum of (cost - max_cost)."""
    edges = [
        (r, c, float(cost[r, c]) - float(max_cost))
        for r in range(cost.shape[0])
        for c in range(cost.shape[1])
        if cost[r, c] <= max_cost
    ]
    return best_matching(cost.shape[0], edges)


def noise_scale(v: float) -> float:
    return max(abs(v), MIN_SCALE)


class Kalman:
    def __init__(self, z: np.ndarray) -> None:
        w, h = noise_scale(z[2]), noise_scale(z[3])
        std = np.array([2 * STD_POS * w, 2 * STD_POS * h, 2 * STD_POS * w, 2 * STD_POS * h,
                        10 * STD_VEL * w, 10 * STD_VEL * h, 10 * STD_VEL * w, 10 * STD_VEL * h])  # fmt: skip
        self.mean = np.concatenate([z, np.zeros(4)])
        self.cov = np.diag(std**2)

    def predict(self) -> None:
        w, h = noise_scale(self.mean[2]), noise_scale(self.mean[3])
        q = np.array([STD_POS * w, STD_POS * h, STD_POS * w, STD_POS * h,
                      STD_VEL * w, STD_VEL * h, STD_VEL * w, STD_VEL * h])  # fmt: skip
        f = np.eye(8)
        f[:4, 4:] = np.eye(4)
        self.mean = f @ self.mean
        self.cov = f @ self.cov @ f.T + np.diag(q**2)

    def warp(self, m: np.ndarray) -> None:
        m = np.asarray(m, np.float64)
        s = math.sqrt(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])
        t = np.zeros((8, 8))
        t[0:2, 0:2] = m[:, :2]
        t[4:6, 4:6] = m[:, :2]
        for i in (2, 3, 6, 7):
            t[i, i] = s
        self.mean = t @ self.mean
        self.mean[:2] += m[:, 2]
        self.cov = t @ self.cov @ t.T

    def update(self, z: np.ndarray) -> None:
        w, h = noise_scale(self.mean[2]), noise_scale(self.mean[3])
        r = np.array([STD_POS * w, STD_POS * h, STD_POS * w, STD_POS * h])
        s = self.cov[:4, :4] + np.diag(r**2)
        kt = np.linalg.solve(s, self.cov[:4, :])  # K^T
        self.mean = self.mean + kt.T @ (z - self.mean[:4])
        self.cov = self.cov - kt.T @ self.cov[:4, :]

    def ok(self) -> bool:
        return bool(np.all(np.abs(self.mean) <= MAX_STATE) and np.all(np.isfinite(self.cov)))


@dataclass
class Mask:
    """A dense crop placed at (x0, y0)."""

    x0: int
    y0: int
    crop: np.ndarray  # (h, w) bool

    @property
    def area(self) -> int:
        return int(self.crop.sum())


def mask_iou(a: Mask, dx: int, dy: int, b: Mask) -> float:
    if a.area == 0 or b.area == 0:
        return 0.0
    ax0, ay0 = a.x0 + dx, a.y0 + dy
    ah, aw = a.crop.shape
    bh, bw = b.crop.shape
    ox0, ox1 = max(ax0, b.x0), min(ax0 + aw, b.x0 + bw)
    oy0, oy1 = max(ay0, b.y0), min(ay0 + ah, b.y0 + bh)
    inter = 0
    if ox1 > ox0 and oy1 > oy0:
        sa = a.crop[oy0 - ay0 : oy1 - ay0, ox0 - ax0 : ox1 - ax0]
        sb = b.crop[oy0 - b.y0 : oy1 - b.y0, ox0 - b.x0 : ox1 - b.x0]
        inter = int((sa & sb).sum())
    return inter / (a.area + b.area - inter)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if not (w > 0 and h > 0):
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class RefTrack:
    kf: Kalman
    start_frame: int
    id: int = 0
    lost: bool = False
    hits: int = 0
    last_frame: int = 0
    score: float = 0.0
    votes: dict = field(default_factory=dict)  # class -> [count, last_frame]
    voted: int = 0
    mask: Mask | None = None
    mask_c: tuple[float, float] = (0.0, 0.0)
    pred: np.ndarray | None = None
    shift: tuple[int, int] = (0, 0)


def f32(v: float) -> float:
    """A threshold as the core holds it (float32), widened to double."""
    return float(np.float32(v))


class RefTracker:
    def __init__(self, high_thresh=0.5, low_thresh=0.1, new_track_thresh=0.6, match_iou=0.2,
                 second_match_iou=0.5, unconfirmed_match_iou=0.3, duplicate_iou=0.8, lost_frames=30,
                 min_hits=1, use_masks=True, fuse_score=True) -> None:  # fmt: skip
        self.o = dict(high=f32(high_thresh), low=f32(low_thresh), new=f32(new_track_thresh), m1=f32(match_iou),
                      m2=f32(second_match_iou), m3=f32(unconfirmed_match_iou), dup=f32(duplicate_iou))  # fmt: skip
        self.lost_frames, self.min_hits = lost_frames, min_hits
        self.use_masks, self.fuse = use_masks, fuse_score
        self.tracks: list[RefTrack] = []
        self.frame = 0
        self.next_id = 1

    def _sim(self, t: RefTrack, d: int) -> float:
        dm = self._det_masks[d] if self._det_masks is not None else None
        if self.use_masks and t.mask is not None and dm is not None and dm.area > 0:
            return mask_iou(t.mask, t.shift[0], t.shift[1], dm)
        return box_iou(t.pred, self._boxes[d])

    def _associate(self, rows: list[RefTrack], cols: list[int], thresh: float, fuse: bool) -> list[int]:
        edges = []
        for r, t in enumerate(rows):
            for c, d in enumerate(cols):
                sim = self._sim(t, d)
                if fuse:
                    sim *= float(self._scores[d])
                if sim >= thresh and sim > 0:
                    edges.append((r, c, thresh - sim))
        return best_matching(len(rows), edges)

    def _overlap(self, e: int, owner: RefTrack, d: int) -> float:
        """IoU of detection d with detection e, already given to ``owner``: masks where both have one."""
        dm = self._det_masks[d] if self._det_masks is not None else None
        if dm is not None and dm.area > 0 and owner.mask is not None:
            return mask_iou(owner.mask, 0, 0, dm)
        return box_iou(self._boxes[e], self._boxes[d])

    def _match(self, t: RefTrack, d: int) -> None:
        b = self._boxes[d]
        z = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])
        t.kf.update(z)
        t.lost = False
        t.hits += 1
        t.last_frame = self.frame
        t.score = float(self._scores[d])
        self._vote(t, int(self._classes[d]))
        dm = self._det_masks[d] if self._det_masks is not None else None
        if dm is not None and dm.area > 0:
            t.mask, t.mask_c = dm, (t.kf.mean[0], t.kf.mean[1])
        else:
            t.mask = None

    def _vote(self, t: RefTrack, cls: int) -> None:
        count = t.votes.get(cls, [0, 0])[0] + 1
        t.votes[cls] = [count, self.frame]
        t.voted = max(t.votes.items(), key=lambda kv: (kv[1][0], kv[1][1]))[0]

    def update(self, boxes, scores, classes=None, masks=None, warp=None):
        """masks: None or a list of Mask per detection (an empty crop: no mask)."""
        self.frame += 1
        n = len(scores)
        self._boxes = np.asarray(boxes, np.float32).astype(np.float64).reshape(-1, 4)
        self._scores = np.asarray(scores, np.float32)
        self._classes = np.zeros(n, np.int64) if classes is None else np.asarray(classes)
        self._det_masks = masks if (self.use_masks and masks is not None) else None
        for t in self.tracks:
            t.kf.predict()
            if warp is not None:
                t.kf.warp(warp)
        self.tracks = [t for t in self.tracks if t.kf.ok()]
        for t in self.tracks:
            m = t.kf.mean
            t.pred = np.array([m[0] - m[2] / 2, m[1] - m[3] / 2, m[0] + m[2] / 2, m[1] + m[3] / 2])
            t.shift = (llround(m[0] - t.mask_c[0]), llround(m[1] - t.mask_c[1]))
        o = self.o
        high = [i for i in range(n) if self._scores[i] >= o["high"]]
        low = [i for i in range(n) if o["low"] <= self._scores[i] < o["high"]]
        pool = [t for t in self.tracks if t.id != 0]
        tentative = [t for t in self.tracks if t.id == 0]
        owner: dict[int, RefTrack] = {}
        # stage 1
        match = self._associate(pool, high, o["m1"], self.fuse)
        used = set()
        remaining = []
        for t, c in zip(pool, match):
            if c >= 0:
                self._match(t, high[c])
                owner[high[c]] = t
                used.add(high[c])
            elif not t.lost:
                remaining.append(t)
        # stage 2
        match = self._associate(remaining, low, o["m2"], False)
        for t, c in zip(remaining, match):
            if c >= 0:
                self._match(t, low[c])
                owner[low[c]] = t
            else:
                t.lost = True
        # stage 3
        left = [d for d in high if d not in used]
        match = self._associate(tentative, left, o["m3"], self.fuse)
        removed = set()
        for t, c in zip(tentative, match):
            if c < 0:
                removed.add(id(t))
                continue
            used.add(left[c])
            self._match(t, left[c])
            if t.hits >= self.min_hits:
                t.id, self.next_id = self.next_id, self.next_id + 1
            owner[left[c]] = t
        # new tracks
        for d in left:
            if d in used or self._scores[d] < o["new"]:
                continue
            if any(self._overlap(e, t, d) > o["dup"] for e, t in owner.items()):
                continue  # the same object detected twice
            b = self._boxes[d]
            z = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])
            t = RefTrack(Kalman(z), start_frame=self.frame, hits=1, last_frame=self.frame, score=float(self._scores[d]))
            self._vote(t, int(self._classes[d]))
            dm = self._det_masks[d] if self._det_masks is not None else None
            if dm is not None and dm.area > 0:
                t.mask, t.mask_c = dm, (z[0], z[1])
            if t.hits >= self.min_hits:
                t.id, self.next_id = self.next_id, self.next_id + 1
            self.tracks.append(t)
            owner[d] = t
        ids = np.full(n, -1, np.int64)
        cls = np.full(n, -1, np.int32)
        for d, t in owner.items():
            if t.id != 0:
                ids[d], cls[d] = t.id, t.voted
        self.tracks = [
            t
            for t in self.tracks
            if id(t) not in removed and not (t.lost and self.frame - t.last_frame > self.lost_frames)
        ]
        return ids, cls

    def confirmed(self) -> list[RefTrack]:
        return sorted((t for t in self.tracks if t.id != 0), key=lambda t: t.id)
