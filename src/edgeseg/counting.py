"""Counting tracked instances: crossings of a line, entries into a polygon zone, per class and direction.

Both counters take the per-frame ``Result``s of a tracked stream (``result.track_ids`` set) and count *tracks*,
not detections: a part is counted once however many frames it takes to cross. An instance's position is its
anchor point: the centre of its box (``anchor="center"``) or the middle of the box's bottom edge
(``anchor="bottom"``, where objects stand on the ground plane, e.g. people).

Line direction: for a line given as ``x1, y1, x2, y2``, "in" is a crossing from the line's left-hand side to its
right-hand side, as seen on screen by someone walking along it from ``(x1, y1)`` to ``(x2, y2)``; "out" is the
other way. A line drawn from the bottom of the frame to the top counts left-to-right motion as "in"; one drawn
from left to right counts downward motion as "in".

>>> import numpy as np
>>> from types import SimpleNamespace
>>> counter = LineCounter((50, 100, 50, 0), names=("part",))
>>> for x in (40.0, 60.0):  # track 7 moves from x=40 to x=60 across the line x=50
...     frame = SimpleNamespace(boxes=np.array([[x - 5, 45, x + 5, 55]], np.float32), class_ids=np.array([0]),
...                             names=("part",), track_ids=np.array([7]), track_classes=None)
...     crossed = counter.update(frame)
>>> crossed, counter.counts
({'in': [(7, 'part')], 'out': []}, {'part': {'in': 1, 'out': 0}})
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LineCounter", "ZoneCounter"]

_ANCHORS = ("center", "bottom")
_EPS = 1e-9


def _check_anchor(anchor: object) -> str:
    if anchor not in _ANCHORS:
        raise ValueError(f"anchor={anchor!r} is not supported: use one of {', '.join(map(repr, _ANCHORS))}")
    return str(anchor)


def _check_max_age(max_age: object) -> int:
    if isinstance(max_age, (bool, np.bool_)) or not isinstance(max_age, (int, np.integer)) or max_age < 1:
        raise ValueError(f"max_age={max_age!r} must be an integer >= 1 (frames a lost track is remembered)")
    return int(max_age)


def _check_names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names={names!r} must be a sequence of class names")
    return tuple(names)


def _observations(result: Any, anchor: str, who: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(track ids, class ids, (N, 2) anchor points, the result's names) of ``result``, checked."""
    track_ids = getattr(result, "track_ids", None)
    if track_ids is None:
        raise ValueError(
            f"{who} counts tracks: result.track_ids is None. Feed it results of a tracked stream "
            "(model.stream(..., track=True)) or of a Tracker"
        )
    track_ids = np.asarray(track_ids)
    classes = getattr(result, "track_classes", None)
    if classes is None:
        classes = result.class_ids
    classes = np.asarray(classes)
    boxes = np.asarray(result.boxes, np.float64)
    n = len(track_ids)
    if track_ids.ndim != 1 or classes.shape != (n,) or boxes.shape != (n, 4):
        raise ValueError(
            f"{who}: result arrays disagree: track_ids {track_ids.shape}, classes {classes.shape}, "
            f"boxes {boxes.shape}; expected (N,), (N,) and (N, 4)"
        )
    if n and not (np.issubdtype(track_ids.dtype, np.integer) and np.issubdtype(classes.dtype, np.integer)):
        raise ValueError(f"{who}: track ids and classes must be integers, got {track_ids.dtype} and {classes.dtype}")
    x = (boxes[:, 0] + boxes[:, 2]) / 2.0
    y = (boxes[:, 1] + boxes[:, 3]) / 2.0 if anchor == "center" else boxes[:, 3]
    return track_ids, classes, np.stack([x, y], axis=1), tuple(getattr(result, "names", ()) or ())


def _class_name(names: tuple[str, ...], cls: int, who: str) -> str:
    if not 0 <= cls < len(names):
        raise ValueError(f"{who}: class index {cls} is outside the {len(names)} class names")
    return names[cls]


@dataclass
class _LineTrack:
    side: int  # -1, +1, or 0 until first seen off the line
    x: float  # anchor at the last sighting off the line
    y: float
    last_seen: int  # frame number (update count)
    counted_in: bool = False
    counted_out: bool = False


class LineCounter:
    """Counts tracks crossing a line segment, per class and direction.

    Rules: a track (``track_id > 0``; -1 marks an instance without a confirmed track and is ignored) is counted when
    its anchor point is on one side of the line at one sighting and on the other side at a later sighting of the
    same track, *and* the straight move between the two points crosses the line within the segment (a move past
    either end is not a crossing, though the track's side is updated). Each track is counted at most once per
    direction, so a track jittering on the line, or going back and forth, adds at most one "in" and one "out".
    Sightings exactly on the line do not change the remembered side. A track that disappears (missed detections,
    occlusion) keeps its side memory, so it is counted when it reappears on the other side; tracks not seen for
    ``max_age`` frames are forgotten, which keeps memory flat on endless streams. The class counted is the
    track's class at the crossing (``result.track_classes`` when set, else ``result.class_ids``).

    Direction: "in" is crossing from the left-hand to the right-hand side of the directed line ``x1, y1 -> x2, y2``
    as seen on screen (image y pointing down); "out" the reverse.

    Args:
        line: ``x1, y1, x2, y2`` in image pixels, two distinct points.
        names: class names by class index; default: each result's ``names``.
        anchor: ``"center"`` (box centre) or ``"bottom"`` (middle of the box's bottom edge).
        max_age: frames (calls to ``update``) after which an unseen track is forgotten.

    Raises:
        ValueError: a malformed line, anchor, names or max_age.
    """

    def __init__(
        self,
        line: tuple[float, float, float, float] | Sequence[float],
        names: Sequence[str] | None = None,
        anchor: str = "center",
        max_age: int = 300,
    ) -> None:
        try:
            values = np.asarray(line, np.float64)
        except (TypeError, ValueError):
            values = np.zeros(0)
        if values.shape != (4,) or not np.all(np.isfinite(values)) or (values[0], values[1]) == (values[2], values[3]):
            raise ValueError(f"line={line!r} must be 4 finite numbers x1, y1, x2, y2 with two distinct ends")
        self.line: tuple[float, float, float, float] = tuple(float(v) for v in values)  # type: ignore[assignment]
        self.anchor = _check_anchor(anchor)
        self.max_age = _check_max_age(max_age)
        self.names = _check_names(names)
        self._a = values[:2]
        self._d = values[2:] - values[:2]
        self._dd = float(self._d @ self._d)
        self.reset()

    def reset(self) -> None:
        """Forget every track and zero the counts (the line and names stay)."""
        self._tracks: OrderedDict[int, _LineTrack] = OrderedDict()  # least recently seen first
        self._counts: dict[str, dict[str, int]] = {}
        if self.names is not None:
            self._counts = {n: {"in": 0, "out": 0} for n in self.names}
        self.frames = 0

    def _side(self, x: float, y: float) -> float:
        return float(self._d[0] * (y - self._a[1]) - self._d[1] * (x - self._a[0]))

    def update(self, result: Any) -> dict[str, list[tuple[int, str]]]:
        """Count the crossings in one frame's tracked ``Result``.

        Returns:
            This frame's new crossings: ``{"in": [(track_id, class name), ...], "out": [...]}``.

        Raises:
            ValueError: ``result.track_ids`` is None, the arrays disagree in length, or a class index has no name.
        """
        who = type(self).__name__
        track_ids, classes, points, result_names = _observations(result, self.anchor, who)
        names = self.names if self.names is not None else result_names
        for n in names:
            self._counts.setdefault(n, {"in": 0, "out": 0})
        frame = self.frames
        crossed: dict[str, list[tuple[int, str]]] = {"in": [], "out": []}
        seen: set[int] = set()
        for tid, cls, (x, y) in zip(track_ids.tolist(), classes.tolist(), points.tolist()):
            if tid <= 0 or tid in seen or not (math.isfinite(x) and math.isfinite(y)):
                continue  # untracked, a duplicate id in one frame (first wins), or a broken box
            seen.add(tid)
            s = self._side(x, y)
            side = (s > 0) - (s < 0)
            track = self._tracks.get(tid)
            if track is None:
                self._tracks[tid] = _LineTrack(side, x, y, frame)
                continue
            self._tracks.move_to_end(tid)
            track.last_seen = frame
            if side == 0:
                continue
            if track.side != 0 and side != track.side and self._on_segment(track.x, track.y, x, y):
                direction = "in" if side > 0 else "out"
                flag = "counted_in" if direction == "in" else "counted_out"
                if not getattr(track, flag):
                    setattr(track, flag, True)
                    name = _class_name(names, int(cls), who)
                    self._counts.setdefault(name, {"in": 0, "out": 0})[direction] += 1
                    crossed[direction].append((tid, name))
            track.side, track.x, track.y = side, x, y
        self._forget(frame)
        self.frames += 1
        return crossed

    def _on_segment(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether the move (x0, y0) -> (x1, y1), whose ends are on opposite sides, crosses within the segment."""
        s0, s1 = self._side(x0, y0), self._side(x1, y1)
        t = s0 / (s0 - s1)
        hx, hy = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        u = ((hx - self._a[0]) * self._d[0] + (hy - self._a[1]) * self._d[1]) / self._dd
        return -_EPS <= u <= 1.0 + _EPS

    def _forget(self, frame: int) -> None:
        # Least recently seen first, so this stops at the first track still fresh: O(forgotten) per frame.
        while self._tracks:
            tid, track = next(iter(self._tracks.items()))
            if frame - track.last_seen < self.max_age:
                break
            del self._tracks[tid]

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Crossings so far: ``{class name: {"in": n, "out": n}}`` (a copy), every known class listed."""
        return {name: dict(c) for name, c in self._counts.items()}

    @property
    def total(self) -> dict[str, int]:
        """Crossings so far over all classes: ``{"in": n, "out": n}``."""
        return {d: sum(c[d] for c in self._counts.values()) for d in ("in", "out")}

    @property
    def tracks(self) -> int:
        """Tracks currently remembered (bounded by the tracks seen within ``max_age`` frames)."""
        return len(self._tracks)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: ``type``, ``line``, ``anchor``, ``frames``, ``counts``, ``total``."""
        return {
            "type": "line",
            "line": list(self.line),
            "anchor": self.anchor,
            "frames": self.frames,
            "counts": self.counts,
            "total": self.total,
        }

    def __repr__(self) -> str:
        return f"LineCounter(line={self.line}, total={self.total})"


@dataclass
class _ZoneTrack:
    last_seen: int
    counted: bool


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: which points are inside ``polygon`` (even-odd rule; points on an edge may go either way)."""
    if not len(points):
        return np.zeros(0, bool)
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (np.count_nonzero(straddles & (x < x_cross), axis=1) % 2).astype(bool)


class ZoneCounter:
    """Counts tracks entering a polygon zone, per class, and the zone's current occupancy.

    Rules: a track (``track_id > 0``; -1 is ignored) is counted the first time its anchor point is seen inside the
    polygon, including a track first seen already inside; it is counted once, however often it leaves and comes
    back, as long as it is remembered (tracks unseen for ``max_age`` frames are forgotten). Occupancy is the number
    of tracked instances of the latest frame whose anchor is inside, per class. The class is the track's class in
    the frame it enters (``result.track_classes`` when set, else ``result.class_ids``).

    Args:
        polygon: (K, 2) vertices ``x, y`` in image pixels, K >= 3, enclosing a non-zero area.
        names: class names by class index; default: each result's ``names``.
        anchor: ``"center"`` or ``"bottom"`` (see ``LineCounter``).
        max_age: frames after which an unseen track is forgotten.

    Raises:
        ValueError: a malformed polygon, anchor, names or max_age.
    """

    def __init__(
        self,
        polygon: Sequence[Sequence[float]] | np.ndarray,
        names: Sequence[str] | None = None,
        anchor: str = "center",
        max_age: int = 300,
    ) -> None:
        try:
            poly = np.asarray(polygon, np.float64)
        except (TypeError, ValueError):
            poly = np.zeros(0)
        ok = poly.ndim == 2 and poly.shape[1:] == (2,) and len(poly) >= 3 and bool(np.all(np.isfinite(poly)))
        if ok:
            x, y = poly[:, 0], poly[:, 1]
            ok = abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) > _EPS  # twice the area
        if not ok:
            raise ValueError(f"polygon={polygon!r} must be 3 or more finite x, y vertices enclosing a non-zero area")
        self.polygon = poly
        self.anchor = _check_anchor(anchor)
        self.max_age = _check_max_age(max_age)
        self.names = _check_names(names)
        self.reset()

    def reset(self) -> None:
        """Forget every track and zero the counts and occupancy."""
        self._tracks: OrderedDict[int, _ZoneTrack] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._occupancy: dict[str, int] = {}
        if self.names is not None:
            self._counts = {n: 0 for n in self.names}
            self._occupancy = {n: 0 for n in self.names}
        self.frames = 0

    def update(self, result: Any) -> dict[str, Any]:
        """Count the entries in one frame's tracked ``Result`` and update the occupancy.

        Returns:
            ``{"entered": [(track_id, class name), ...], "occupancy": {class name: n}}`` for this frame.

        Raises:
            ValueError: ``result.track_ids`` is None, the arrays disagree in length, or a class index has no name.
        """
        who = type(self).__name__
        track_ids, classes, points, result_names = _observations(result, self.anchor, who)
        names = self.names if self.names is not None else result_names
        for n in names:
            self._counts.setdefault(n, 0)
        occupancy = dict.fromkeys(self._counts, 0)
        inside = _inside(points, self.polygon)
        frame = self.frames
        entered: list[tuple[int, str]] = []
        seen: set[int] = set()
        for tid, cls, is_in in zip(track_ids.tolist(), classes.tolist(), inside.tolist()):
            if tid <= 0 or tid in seen:
                continue
            seen.add(tid)
            track = self._tracks.get(tid)
            if track is None:
                track = self._tracks[tid] = _ZoneTrack(frame, False)
            else:
                self._tracks.move_to_end(tid)
                track.last_seen = frame
            if not is_in:
                continue
            name = _class_name(names, int(cls), who)
            occupancy[name] = occupancy.get(name, 0) + 1
            if not track.counted:
                track.counted = True
                self._counts[name] = self._counts.get(name, 0) + 1
                entered.append((tid, name))
        self._occupancy = occupancy
        while self._tracks:
            tid, track = next(iter(self._tracks.items()))
            if frame - track.last_seen < self.max_age:
                break
            del self._tracks[tid]
        self.frames += 1
        return {"entered": entered, "occupancy": dict(occupancy)}

    @property
    def counts(self) -> dict[str, int]:
        """Tracks that entered so far, per class name (a copy)."""
        return dict(self._counts)

    @property
    def occupancy(self) -> dict[str, int]:
        """Tracked instances inside the zone in the latest frame, per class name."""
        return {n: self._occupancy.get(n, 0) for n in self._counts}

    @property
    def total(self) -> dict[str, int]:
        """``{"entered": n, "occupancy": n}`` over all classes."""
        return {"entered": sum(self._counts.values()), "occupancy": sum(self._occupancy.values())}

    @property
    def tracks(self) -> int:
        """Tracks currently remembered."""
        return len(self._tracks)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: ``type``, ``polygon``, ``anchor``, ``frames``, ``counts``, ``occupancy``, ``total``."""
        return {
            "type": "zone",
            "polygon": self.polygon.tolist(),
            "anchor": self.anchor,
            "frames": self.frames,
            "counts": self.counts,
            "occupancy": self.occupancy,
            "total": self.total,
        }

    def __repr__(self) -> str:
        return f"ZoneCounter({len(self.polygon)} vertices, total={self.total})"
