"""Multi-object tracking: stable ids for the instances of a video, frame after frame.

``Tracker`` wraps the C++ core's ByteTrack-style tracker (``edgeseg/track.hpp``): a constant-velocity
Kalman filter per track, two-stage association of high- and low-score detections, a buffer of lost
tracks, activation after ``min_hits`` consecutive hits, and association by mask IoU on the
bit-packed crops (or by box IoU). Optionally it compensates camera motion with a global affine
estimated from sparse optical flow, as BoT-SORT does, for cameras on moving robots.

>>> import numpy as np
>>> from edgeseg.masks import InstanceMasks
>>> from edgeseg.result import Result
>>> tracker = Tracker(association="box")
>>> def frame(x):
...     boxes = np.array([[x, 10, x + 20, 30]], np.float32)
...     return Result(boxes, np.array([0.9], np.float32), np.array([0], np.int32), ("part",),
...                   InstanceMasks.empty((100, 100)), (100, 100))
>>> [tracker.update(frame(x)).track_ids.tolist() for x in (10, 13, 16)]
[[1], [1], [1]]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .result import Result

__all__ = ["Track", "Tracker", "TrackerConfig"]

_UNIT_FIELDS = (
    "high_thresh",
    "low_thresh",
    "new_track_thresh",
    "match_iou",
    "second_match_iou",
    "unconfirmed_match_iou",
    "duplicate_iou",
)
_CORE_FIELDS = (*_UNIT_FIELDS, "lost_frames", "min_hits", "fuse_score")


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of a ``Tracker``. Each frame runs, in order (the C++ header ``track.hpp`` has the rules):

    1. stage 1: detections scoring >= ``high_thresh`` against tracked and lost tracks;
    2. stage 2: detections in [``low_thresh``, ``high_thresh``) against tracked tracks still unmatched,
       which then become lost;
    3. stage 3: tentative tracks against the high detections left (unmatched tentative tracks are removed);
    4. high detections still unmatched scoring >= ``new_track_thresh`` start tentative tracks.

    Attributes:
        high_thresh: detections scoring at least this take part in stage 1 (and may start tracks).
        low_thresh: detections scoring in [low_thresh, high_thresh) may only continue tracked tracks
            (stage 2); lower ones are ignored.
        new_track_thresh: unmatched high detections scoring at least this start a track (so the
            effective threshold is the larger of it and ``high_thresh``).
        match_iou: stage 1 matches pairs whose similarity (IoU, times the detection's score when
            ``fuse_score``) is at least this.
        second_match_iou: stage 2 matches pairs whose IoU is at least this (never fused).
        unconfirmed_match_iou: stage 3 matches pairs whose similarity (fused as in stage 1) is at least this.
        duplicate_iou: a detection whose box overlaps one already given to a track this frame by more than
            this IoU starts no track: it is the same object seen as a second class (class-aware NMS keeps
            one box per class), and a second track would count it twice. 1 disables the check.
        lost_frames: a lost track may be found again after up to this many frames without a detection,
            then it is removed.
        min_hits: consecutive frames with a detection that confirm a new track and give it its id;
            1 confirms it on first sight.
        fuse_score: multiply IoUs by the detection scores in stages 1 and 3, as ByteTrack does.
        association: ``"mask"`` (mask IoU on the bit-packed crops where both the track and the detection
            have a mask, box IoU elsewhere) or ``"box"`` (box IoU only).
        cmc: camera-motion compensation: estimate a global affine between consecutive frames from sparse
            optical flow and move the tracks' predictions by it. Needs the frames (``Tracker.update(result,
            image)``); costs a few milliseconds a frame.
    """

    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_iou: float = 0.2
    second_match_iou: float = 0.5
    unconfirmed_match_iou: float = 0.3
    duplicate_iou: float = 0.8
    lost_frames: int = 30
    min_hits: int = 1
    fuse_score: bool = True
    association: str = "mask"
    cmc: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the first field out of range, its value and the allowed range."""
        for name in _UNIT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"TrackerConfig.{name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"TrackerConfig.{name} must be in [0, 1], got {value!r}")
        if float(self.low_thresh) > float(self.high_thresh):
            raise ValueError(
                f"TrackerConfig.low_thresh ({self.low_thresh!r}) must not exceed high_thresh ({self.high_thresh!r})"
            )
        for name, least in (("lost_frames", 0), ("min_hits", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"TrackerConfig.{name} must be an integer >= {least}, got {value!r}")
            if not least <= int(value) < 2**63:
                raise ValueError(f"TrackerConfig.{name} must be an integer in [{least}, 2^63), got {value!r}")
        for name in ("fuse_score", "cmc"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"TrackerConfig.{name} must be True or False, got {value!r}")
        if self.association not in ("mask", "box"):
            raise ValueError(f"TrackerConfig.association must be 'mask' or 'box', got {self.association!r}")


@dataclass(frozen=True)
class Track:
    """A confirmed track, as the tracker holds it after the last update.

    Attributes:
        id: the track's id (positive, stable).
        box: (4,) float32 ``x1, y1, x2, y2`` of the filtered state (the prediction while lost).
        score: score of the last detection matched to it.
        class_id: the class it has been matched with most often (ties: the most recent).
        hits: frames in which it was matched.
        age: frames since it started (1 on its first frame).
        time_since_update: frames since it was last matched (0: matched in the last update).
        lost: not matched in the last update(s); it keeps its id for ``lost_frames`` frames.
    """

    id: int
    box: np.ndarray
    score: float
    class_id: int
    hits: int
    age: int
    time_since_update: int
    lost: bool


class Tracker:
    """Multi-object tracker over ``Result``s: one per video stream.

    Not thread-safe: use one Tracker per stream, from one thread at a time (concurrent calls are
    serialized by the core's lock, but their order, and so the ids, would be arbitrary).

    Args:
        config: the settings (default ``TrackerConfig()``).
        **overrides: fields of ``TrackerConfig`` to change, e.g. ``Tracker(association="box")``.
    """

    def __init__(self, config: TrackerConfig | None = None, **overrides: Any) -> None:
        config = TrackerConfig() if config is None else config
        if not isinstance(config, TrackerConfig):
            raise ValueError(f"config must be a TrackerConfig, got {type(config).__name__}")
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrackerConfig)})
        if unknown:
            raise ValueError(f"unknown TrackerConfig field(s): {', '.join(unknown)}")
        config = dataclasses.replace(config, **overrides)
        config.validate()
        self.config = config
        options = {name: getattr(config, name) for name in _CORE_FIELDS}
        self._core = _core.Tracker(**options, use_masks=config.association == "mask")
        self._motion = _CameraMotion() if config.cmc else None

    def update(self, result: Result, image: np.ndarray | None = None) -> Result:
        """Track one frame's instances.

        Args:
            result: the frame's instances (``model(frame)``).
            image: the frame itself (BGR or grayscale), used only for camera-motion compensation.

        Returns:
            ``dataclasses.replace(result, track_ids=..., track_classes=...)``: int64 (N,) id of each
            instance's confirmed track, -1 for an instance in no confirmed track (a low-score detection
            not matched, a tentative track before ``min_hits``); int32 (N,) the track's voted class, -1
            where the id is -1.
        """
        boxes = _as_array(result.boxes, np.float32, "result.boxes")
        scores = _as_array(result.scores, np.float32, "result.scores")
        classes = _as_array(result.class_ids, np.int32, "result.class_ids", integer=True)
        n = len(scores)
        rects = offsets = bits = None
        masks = result.masks
        if self.config.association == "mask" and masks is not None and len(masks) > 0:
            if len(masks) != n:
                raise ValueError(f"result.masks holds {len(masks)} masks for {n} instances")
            rects, offsets, bits = masks.rects, masks.offsets, masks.data
        warp = None
        if self._motion is not None and image is not None:
            warp = self._motion(image, boxes, result.image_shape)
        ids, track_classes = self._core.update(boxes, scores, classes, rects, offsets, bits, warp)
        return dataclasses.replace(result, track_ids=ids, track_classes=track_classes)

    def reset(self) -> None:
        """Forget every track (and the last frame, for camera motion); ids start again at 1."""
        self._core.reset()
        if self._motion is not None:
            self._motion.reset()

    @property
    def tracks(self) -> list[Track]:
        """The confirmed tracks, tracked and lost, by id."""
        t = self._core.tracks()
        return [
            Track(
                id=int(t["ids"][i]),
                box=t["boxes"][i].copy(),
                score=float(t["scores"][i]),
                class_id=int(t["class_ids"][i]),
                hits=int(t["hits"][i]),
                age=int(t["age"][i]),
                time_since_update=int(t["time_since_update"][i]),
                lost=bool(t["lost"][i]),
            )
            for i in range(len(t["ids"]))
        ]

    @property
    def frame_count(self) -> int:
        """Frames given to ``update`` since the tracker was made or reset."""
        return int(self._core.frame)

    def __repr__(self) -> str:
        return f"Tracker({self.config}, frames={self.frame_count})"


def _as_array(value: Any, dtype: type, name: str, integer: bool = False) -> np.ndarray:
    """``value`` as a contiguous array of ``dtype`` (no copy when it already is one)."""
    a = np.asarray(value)
    kind_ok = a.dtype.kind in "iu" if integer else a.dtype.kind in "iuf"
    if not kind_ok:
        what = "integers" if integer else "real numbers"
        raise ValueError(f"{name} must hold {what}, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


class _CameraMotion:
    """Global affine between consecutive frames from sparse optical flow (BoT-SORT's sparse GMC).

    Frames are converted to grayscale and downscaled (long side at most ``max_side``); corners are
    found outside the previous frame's detections (moving objects would drag the estimate), tracked
    with pyramidal Lucas-Kanade and fitted with a RANSAC partial affine (rotation, uniform scale,
    translation). Any failure gives None (no warp): a wrong warp hurts more than a missing one.
    """

    def __init__(self, max_side: int = 480, max_corners: int = 300) -> None:
        self.max_side = max_side
        self.max_corners = max_corners
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._prev_boxes: np.ndarray | None = None

    def __call__(self, image: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray | None:
        import cv2

        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image must be a uint8 (H, W) or (H, W, 1|3|4) array, got {image.dtype} {image.shape}")
        if tuple(image.shape[:2]) != tuple(image_shape):
            raise ValueError(f"image is {image.shape[:2]} but the result's image_shape is {tuple(image_shape)}")
        if image.ndim == 3 and image.shape[2] == 3:
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.ndim == 3 and image.shape[2] == 4:
            gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        else:
            gray = image.reshape(image.shape[:2])
        factor = max(1, math.ceil(max(gray.shape) / self.max_side))
        if factor > 1:
            gray = cv2.resize(gray, (gray.shape[1] // factor, gray.shape[0] // factor), interpolation=cv2.INTER_AREA)
        prev, prev_boxes = self._prev, self._prev_boxes
        self._prev, self._prev_boxes = gray, boxes.copy()
        if prev is None or prev.shape != gray.shape or min(gray.shape) < 16:
            return None
        keep = np.full(prev.shape, 255, np.uint8)
        for x1, y1, x2, y2 in (prev_boxes / factor).astype(np.int64).tolist():
            keep[max(y1, 0) : max(y2 + 1, 0), max(x1, 0) : max(x2 + 1, 0)] = 0
        pts = cv2.goodFeaturesToTrack(prev, self.max_corners, 0.01, 3, mask=keep, blockSize=3)
        if pts is None or len(pts) < 8:
            return None
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, gray, pts, None)
        good = status.reshape(-1) == 1
        if good.sum() < 8:
            return None
        warp, inliers = cv2.estimateAffinePartial2D(pts[good], nxt[good], method=cv2.RANSAC)
        if warp is None or inliers is None or inliers.sum() < 6:
            return None
        warp = warp.astype(np.float32)
        warp[:, 2] *= factor  # to full-resolution pixels: x_full = factor * x_small
        det = float(warp[0, 0] * warp[1, 1] - warp[0, 1] * warp[1, 0])
        if not np.all(np.isfinite(warp)) or not 0.25 < det < 4.0:
            return None
        return warp
