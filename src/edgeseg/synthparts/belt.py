"""Synthetic conveyor-belt video: parts ride a scrolling belt through the frame, with per-frame ground truth.

Parts (the same classes and look as ``render_scene``) arrive at the left in small clusters, travel to the right at
belt speed with a slow per-cluster speed wobble and some rotation, and leave at the right. A cluster is a few
parts placed against each other (just touching, or one lying a little over another); parts of different
clusters never touch, and a faster cluster queues behind a slower one instead of running into it. Within a
cluster the layout is checked once, when it is built off-screen, with the rules ``render_scene`` applies to a
placement: every part keeps at least ``1 - max_overlap`` of its area visible, stays in one piece and keeps its
telling features (a bracket's hole sites, a washer's crack) uncovered. Clusters move rigidly, so that stays true
in every frame (up to the slight change of shape the perspective gives), and no part is ever fully hidden, at the
counting line or anywhere else.

Speed: each part is shaded once into a sprite (premultiplied colour, shadow and coverage, in the belt plane at
the pose it was shaded in) and every frame only warps the sprite to its current pose through the camera's
perspective. A rotating part is re-shaded when it has turned by ``_RESHADE_DEG`` since, so its highlights and
shadow follow the light. The belt is a periodic texture (a belt is a loop, seam included) warped once per frame
at its scroll offset, and sensor noise is drawn from a per-sequence pool at a random offset.

Ground truth: the instance map, ids, classes and boxes come from the very coverage that is blended into the
image (coverage >= 1/2), so masks sit on the drawn edges. A part is annotated in a frame when at least
``MIN_PIXELS`` of it are visible; smaller slivers at the frame edges are drawn but left as background.

>>> from edgeseg.synthparts import BeltConfig, render_belt
>>> frames = list(render_belt(3, seed=0, config=BeltConfig(width=160, height=96, part_size=(20.0, 40.0))))
>>> [f.image.shape for f in frames]
[(96, 160, 3), (96, 160, 3), (96, 160, 3)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .parts import CLASSES, PartGeometry, make_part
from .scene import (
    _BELT_TINTS,
    MIN_PIXELS,
    _apply_blur,
    _check_number,
    _connected,
    _draw_blur,
    _drop_shadow,
    _fast_normal,
    _Illumination,
    _Lighting,
    _Part,
    _part_colour,
    _perspective,
    _pick_kind,
    _pose_matrix,
    _project,
    _rasterize,
    _window,
    check_part_size,
    masks_of,
)

_IDENTITY = np.eye(3)
_NO_KEYPOINTS = np.zeros((0, 3))
_MAX_CLUSTER = 4  # parts in one cluster of touching parts
_ATTACH_TRIES = 4  # attempts to place a part against a cluster before giving it up
_BISECT_STEPS = 9  # distance search: about (sum of radii) / 512, i.e. well under a pixel
_GROUP_GAP = 2.0  # px between the bounding circles of different clusters: they never touch
_RESHADE_DEG = 15.0  # a rotating part is re-shaded after turning this far
_SPAWN_TRIES = 8  # lateral positions tried for a new cluster
_QUEUE_LIMIT = 4.0  # a cluster that would wait more than this many part sizes off-screen is dropped (jammed entry)


@dataclass(frozen=True)
class BeltConfig:
    """What a belt sequence contains, how it moves and how strongly the camera effects degrade it.

    Effect strengths (``blur``, ``noise``, ``perspective``) are maxima: each sequence draws its own strength
    uniformly between 0 and the maximum, fixed for the whole sequence (one camera, one mounting).

    Attributes:
        width, height: frame size in pixels.
        fps: frame rate written into videos; it does not change the motion, which is per frame.
        speed: belt speed in pixels per frame; parts move left to right.
        speed_jitter: each cluster's speed wobbles slowly by up to this fraction of ``speed`` (parts slip on the
            belt); a cluster that catches up with a slower one ahead queues behind it.
        rotation: largest rotation speed of a cluster in degrees per frame (each draws its own, either way).
        spawn_rate: mean number of parts arriving per frame (Poisson arrivals of clusters); a belt too full to
            take more drops arrivals.
        touching: probability that an arriving part is placed against a part of the cluster being formed
            (clusters hold up to 4 parts): 0 gives only lone parts, higher values many small touching groups.
        max_overlap: largest fraction of a part's area that parts lying over it may cover; 0 makes touching
            parts only touch, never overlap.
        part_size: smallest and largest outer extent of a part in pixels, before perspective.
        defect_rate: probability that a washer or a bracket is drawn as its defective class.
        blur: largest blur sigma in pixels (Gaussian, or motion blur along the belt); 0 disables.
        noise: largest standard deviation of the additive pixel noise (in 0..255 levels); 0 disables.
        perspective: largest displacement of an image corner, as a fraction of the image size; 0 disables.
        prefill: start with the belt already in its steady state (parts everywhere in frame 0) instead of empty.
    """

    # The same camera and parts as SceneConfig's still scenes (what the bundled PartSeg model was trained on),
    # so that the sequences test tracking and counting, not a change of scale.
    width: int = 512
    height: int = 384
    fps: float = 30.0
    speed: float = 6.0
    speed_jitter: float = 0.15
    rotation: float = 0.4
    spawn_rate: float = 0.15
    touching: float = 0.4
    max_overlap: float = 0.15
    part_size: tuple[float, float] = (56.0, 120.0)
    defect_rate: float = 0.25
    blur: float = 1.0
    noise: float = 6.0
    perspective: float = 0.06
    prefill: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the first field that is out of range, with its value and the allowed range."""

        def check(name: str, lo: float, hi: float, integer: bool = False) -> None:
            _check_number(name, getattr(self, name), lo, hi, integer=integer, owner="BeltConfig")

        check("width", 64, 8192, integer=True)
        check("height", 64, 8192, integer=True)
        check("fps", 1, 1000)
        check("speed", 0.5, 64)
        check("speed_jitter", 0, 0.5)
        check("rotation", 0, 10)
        check("spawn_rate", 0, 2)
        check("touching", 0, 1)
        check("max_overlap", 0, 0.6)
        check_part_size("BeltConfig", self.part_size, min(self.width, self.height) / 2, "half the smaller frame side")
        check("defect_rate", 0, 1)
        check("blur", 0, 10)
        check("noise", 0, 64)
        check("perspective", 0, 0.25)
        if not isinstance(self.prefill, (bool, np.bool_)):
            raise ValueError(f"BeltConfig.prefill={self.prefill!r} is not a bool: use True or False")


@dataclass
class BeltFrame:
    """One frame of a belt sequence and its ground truth.

    Attributes:
        index: 0-based frame number.
        image: (H, W, 3) uint8 BGR frame.
        instance_map: (H, W) uint16; 0 is background, ``i + 1`` marks the visible pixels of instance ``i``.
            Instances are in drawing order (bottom first), so visible masks are disjoint.
        ids: (N,) int64 persistent part ids: positive, the same for a part in every frame it is annotated in,
            never reused within a sequence.
        classes: (N,) int64 class indices into ``CLASSES``.
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` (x2, y2 exclusive), tight around each visible mask. The counting
            convention (``true_counts``, ``edgeseg.counting``) uses the centre of this box.
        centers: (N, 2) float32 image position of each part's local origin (as ``Scene.centers``): the physical
            centre, which may be hidden or out of frame.
        visibility: (N,) float32 visible fraction of each part's whole area (occlusion and frame edges).
    """

    index: int
    image: np.ndarray
    instance_map: np.ndarray
    ids: np.ndarray
    classes: np.ndarray
    boxes: np.ndarray
    centers: np.ndarray
    visibility: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def masks(self) -> np.ndarray:
        """(N, H, W) bool visible masks (memory grows with N x H x W)."""
        return masks_of(self.instance_map, len(self))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class BeltVideo:
    """What ``write_belt_video`` wrote.

    Attributes:
        path: the video file.
        mot_path: ``<stem>.gt.txt``, MOTChallenge ground truth.
        coco_path: ``<stem>.gt.json``, COCO-style ground truth with track ids and RLE masks.
        counts_path: ``<stem>.counts.json``, the true line-crossing counts and the line.
        frames, fps, width, height: the video's frame count, frame rate and frame size.
        line: the counting line ``x1, y1, x2, y2``.
        counts: true crossings per class name and direction (see ``true_counts``).
    """

    path: Path
    mot_path: Path
    coco_path: Path
    counts_path: Path
    frames: int
    fps: float
    width: int
    height: int
    line: tuple[float, float, float, float]
    counts: dict[str, dict[str, int]]


# ----------------------------------------------------------------------------------------------------------------
# Simulation state


@dataclass
class _Sprite:
    """A part shaded at one angle, on the belt plane: premultiplied colour + shadow, and coverage."""

    angle: float  # the part's angle when shaded
    pad: int  # ``keep`` reaches this much further than ``colour`` on every side (the shadow)
    x0: float  # position of pixel (0, 0) of ``colour`` relative to the part's centre (belt-plane pixels)
    y0: float
    colour: np.ndarray  # (h, w, 4) float32 BGR colour * coverage (premultiplied: interpolates right), coverage
    keep: np.ndarray  # (h + 2 pad, w + 2 pad, 3) float32 share of what is below that stays: (1 - shadow) * (1 - cov.)
    area: int  # pixels with coverage >= 1/2


@dataclass
class _Member:
    """A part of a cluster; its pose is relative to the cluster's frame."""

    pid: int
    cls: int
    geom: PartGeometry
    size: float
    radius: float  # bounding circle about the part's origin, px
    dx: float
    dy: float
    dangle: float
    z: int  # drawing order within the cluster (higher is on top)
    seed: int  # shading randomness: a re-shaded part keeps its material and texture
    sprite: _Sprite | None = None


@dataclass
class _Group:
    """A cluster moving rigidly on the belt: reference point (its first part's centre), angle, bounding circle."""

    order: int
    members: list[_Member]
    x: float
    y: float
    radius: float
    angle: float = 0.0
    omega: float = 0.0  # rad / frame
    period: float = 60.0  # speed wobble period, frames
    phase: float = 0.0

    def pose(self, m: _Member) -> tuple[float, float, float]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.x + c * m.dx - s * m.dy, self.y + s * m.dx + c * m.dy, self.angle + m.dangle


@dataclass
class _Layout:
    """A part rasterised on the belt plane (cluster frame), for checking a cluster's layout."""

    x0: int
    y0: int
    mask: np.ndarray
    keypoints: np.ndarray  # (K, 3) x, y, radius
    full: int
    z: int


def _layout(geom: PartGeometry, size: float, x: float, y: float, angle: float, z: int) -> _Layout:
    matrix = _pose_matrix(_IDENTITY, x, y, angle, size)
    x0, y0, alpha = _rasterize(geom, matrix)
    kps = geom.keypoints
    if len(kps):
        kps = np.concatenate([_project(matrix, kps[:, :2]), kps[:, 2:] * size], axis=1)
    mask = alpha >= 128
    return _Layout(x0, y0, mask, kps, int(np.count_nonzero(mask)), z)


def _check_layout(parts: list[_Layout], max_overlap: float) -> tuple[float, bool]:
    """(largest hidden fraction of any part, whether the layout is acceptable) for parts stacked by ``z``."""
    x0 = min(p.x0 for p in parts)
    y0 = min(p.y0 for p in parts)
    x1 = max(p.x0 + p.mask.shape[1] for p in parts)
    y1 = max(p.y0 + p.mask.shape[0] for p in parts)
    imap = np.zeros((y1 - y0, x1 - x0), np.uint8)
    order = sorted(range(len(parts)), key=lambda k: parts[k].z)
    for k in order:
        p = parts[k]
        h, w = p.mask.shape
        imap[p.y0 - y0 : p.y0 - y0 + h, p.x0 - x0 : p.x0 - x0 + w][p.mask] = k + 1
    worst, ok = 0.0, True
    for k, p in enumerate(parts):
        h, w = p.mask.shape
        vis = imap[p.y0 - y0 : p.y0 - y0 + h, p.x0 - x0 : p.x0 - x0 + w] == k + 1
        visible = int(np.count_nonzero(vis))
        hidden = 1.0 - visible / max(p.full, 1)
        worst = max(worst, hidden)
        if visible < max(MIN_PIXELS, (1.0 - max_overlap) * p.full) or p.full < MIN_PIXELS:
            ok = False
        elif visible < p.full and not _connected(vis):
            ok = False  # split in two by a part lying across it
        else:
            # Telling features (hole sites, the crack) show the part itself or belt, never another part.
            for kp in p.keypoints:
                win = _window(imap, x0, y0, kp)
                if np.any((win != 0) & (win != k + 1)):
                    ok = False
                    break
    return worst, ok


class _Belt:
    """The periodic belt texture, warped to the image at the belt's scroll offset."""

    def __init__(
        self, rng: np.random.Generator, persp: np.ndarray, width: int, height: int, bounds: tuple[float, ...]
    ) -> None:
        x_lo, x_hi, y_lo, y_hi = bounds
        lum = rng.uniform(30.0, 75.0)
        tint = _BELT_TINTS[rng.integers(len(_BELT_TINTS))] * rng.uniform(0.95, 1.05, 3)
        colour = lum * tint
        self.colour = (float(colour[0]), float(colour[1]), float(colour[2]), 0.0)
        # Half-resolution texture (rubber has no finer detail), periodic along the belt with period ``ph`` samples:
        # the belt is a loop. ``ph`` is a multiple of the mottle (12) and streak (20) cell sizes, so wrapping the
        # coarse noise before upsampling makes the upsampled texture exactly periodic.
        ph = 60 * math.ceil((x_hi - x_lo) / 120.0 + 1.0)
        self.period = 2.0 * ph  # belt-plane pixels
        self.y_org = 2 * math.floor(y_lo / 2.0) - 8
        h = math.ceil((y_hi - self.y_org) / 2.0) + 8
        m = ph // 12
        mottle = np.pad(rng.standard_normal((h // 12 + 2, m)).astype(np.float32), ((0, 0), (2, 2)), mode="wrap")
        tex = cv2.resize(mottle, ((m + 4) * 12, h), interpolation=cv2.INTER_CUBIC)[:, 24 : 24 + ph]
        tex *= np.float32(rng.uniform(0.03, 0.08))
        s = ph // 20
        stretched = np.pad(rng.standard_normal((h, s)).astype(np.float32), ((0, 0), (1, 1)), mode="wrap")
        stretched *= np.float32(rng.uniform(0.02, 0.05))
        tex += cv2.resize(stretched, ((s + 2) * 20, h), interpolation=cv2.INTER_LINEAR)[:, 20 : 20 + ph]
        streak = np.convolve(rng.standard_normal(h).astype(np.float32), np.array([0.25, 0.5, 0.25], np.float32), "same")
        tex += streak[:, None] * np.float32(rng.uniform(0.02, 0.05))
        tex += _fast_normal(rng, (h, ph), rng.uniform(0.03, 0.07))
        tex += np.float32(1.0)
        if rng.random() < 0.5:
            # The vulcanised seam of the loop: it passes through the frame once per belt revolution.
            x = int(rng.integers(0, ph - 2))
            tex[:, x : x + int(rng.integers(1, 3))] *= np.float32(rng.uniform(0.75, 0.9))
        # Unrolled so that every window the camera can see at any offset in [0, period) is one slice.
        self.x_org = 2 * math.floor((x_lo - self.period) / 2.0) - 4
        cols = math.ceil((x_hi - self.x_org) / 2.0) + 4
        self.texture = np.ascontiguousarray(tex[:, (self.x_org // 2 + np.arange(cols)) % ph])
        self.inv_persp = np.linalg.inv(persp)
        self.size = (width, height)

    def render(self, offset: float) -> np.ndarray:
        """The unlit belt, (H, W, 3) float32, moved right by ``offset`` belt-plane pixels."""
        off = offset % self.period
        # image -> belt plane -> belt coordinates (the belt moved by ``off``) -> texture samples (2 px each).
        to_tex = np.array([[0.5, 0.0, -(self.x_org + off) / 2.0], [0.0, 0.5, -self.y_org / 2.0], [0.0, 0.0, 1.0]])
        grey = cv2.warpPerspective(
            self.texture,
            to_tex @ self.inv_persp,
            self.size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        belt = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        cv2.multiply(belt, self.colour, dst=belt)
        return belt


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer or a numpy SeedSequence")
    return np.random.SeedSequence(int(seed))


def _child(ss: np.random.SeedSequence, k: int) -> np.random.Generator:
    # Derived without ss.spawn(), which would change the caller's SeedSequence and so the next run's output.
    return np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, k)))


class _Sequence:
    """A belt sequence's whole state: camera, light, belt, clusters; ``frame()`` renders, ``step()`` advances."""

    def __init__(self, seed: int | np.random.SeedSequence, config: BeltConfig) -> None:
        ss = _seed_sequence(seed)
        rng = self.rng = _child(ss, 0)  # simulation and sequence-wide draws
        self.noise_rng = _child(ss, 1)  # per-frame sensor noise, so rendering never shifts the simulation
        self.cfg = config
        w, h = self.width, self.height = config.width, config.height

        self.persp = _perspective(rng, w, h, config.perspective)
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        belt_corners = _project(np.linalg.inv(self.persp), corners)
        self.x_lo, self.x_hi = float(belt_corners[:, 0].min()), float(belt_corners[:, 0].max())
        # Belt-plane rows that are in frame across the whole width: parts stay on the belt, inside the frame.
        self.y_top = float(max(belt_corners[0, 1], belt_corners[1, 1]))
        self.y_bot = float(min(belt_corners[2, 1], belt_corners[3, 1]))

        azimuth, tilt = rng.uniform(0.0, 2 * math.pi), rng.uniform(0.6, 1.05)
        direction = (math.cos(azimuth) * math.sin(tilt), math.sin(azimuth) * math.sin(tilt), math.cos(tilt))
        field_ = _Illumination.random(rng, w, h)
        self.lighting = _Lighting(direction, rng.uniform(0.12, 0.35), rng.uniform(0.25, 0.55), field_)
        gain = field_.at(np.arange(w), np.arange(h)).astype(np.float32)
        self.light = cv2.cvtColor(gain, cv2.COLOR_GRAY2BGR)  # uneven light, applied to the whole frame at once
        bounds = (self.x_lo, self.x_hi, float(belt_corners[:, 1].min()), float(belt_corners[:, 1].max()))
        self.belt = _Belt(rng, self.persp, w, h, bounds)

        self.blur = _draw_blur(rng, config.blur, angle=0.0)  # motion blur, if any, along the belt
        std = rng.uniform(0.0, config.noise)
        self.noise: np.ndarray | None = None
        if std >= 0.05:
            # A pool of noise 1.25 frames long read at a random offset each frame: fresh-looking noise for the
            # cost of one add instead of drawing a frame's worth of samples every frame.
            n = h * w * 3
            self.noise = _fast_normal(self.noise_rng, (n + n // 4,), std, np.int16)

        # Clusters arrive as Poisson events; the part rate is spawn_rate, so events are rarer by the mean size.
        p = config.touching
        mean_size = sum(p**k for k in range(_MAX_CLUSTER))
        self.event_rate = config.spawn_rate / mean_size
        self.groups: list[_Group] = []
        self.next_pid = 1
        self.next_order = 0
        self.t = 0  # simulation steps so far
        self.max_r = (self.y_bot - self.y_top) / 2.0 - 1.0  # largest cluster radius that fits the belt's width
        if config.prefill:
            slowest = config.speed * (1.0 - config.speed_jitter)
            for _ in range(math.ceil((self.x_hi - self.x_lo) / slowest) + 1):
                self.step()

    # -- simulation -----------------------------------------------------------------------------------------------

    def _new_member(self, rng: np.random.Generator) -> _Member:
        kind = _pick_kind(rng, self.cfg.defect_rate)
        geom = make_part(kind, rng)
        size = float(rng.uniform(*self.cfg.part_size))
        extent = max(float(np.sqrt((p * p).sum(axis=1)).max()) for p in geom.outer)
        seed = int(rng.integers(0, 2**63 - 1))
        return _Member(0, CLASSES.index(kind), geom, size, extent * size + 1.5, 0.0, 0.0, 0.0, 0, seed)

    def _cluster(self, rng: np.random.Generator) -> list[_Member]:
        """A cluster laid out in its own frame (first part at the origin); its layout passes ``_check_layout``."""
        first = self._new_member(rng)
        first.dangle = float(rng.uniform(0.0, 2 * math.pi))
        members = [first]
        layouts = [_layout(first.geom, first.size, 0.0, 0.0, first.dangle, 0)]
        while len(members) < _MAX_CLUSTER and rng.random() < self.cfg.touching:
            new = self._new_member(rng)
            for _ in range(_ATTACH_TRIES):
                placed = self._attach(rng, members, layouts, new)
                if placed is not None:
                    members.append(new)
                    layouts.append(placed)
                    break
            else:
                break  # this part found no place; the cluster is complete
        return members

    def _attach(
        self, rng: np.random.Generator, members: list[_Member], layouts: list[_Layout], new: _Member
    ) -> _Layout | None:
        """Try to place ``new`` against a random part of the cluster, from a random direction; on success set its
        pose and return its layout."""
        cfg = self.cfg
        target = members[int(rng.integers(len(members)))]
        direction = rng.uniform(0.0, 2 * math.pi)
        angle = float(rng.uniform(0.0, 2 * math.pi))
        on_top = rng.random() < 0.5
        # Half the placements just touch; the others let one part lie partly over the other.
        tau = float(rng.uniform(0.0, cfg.max_overlap)) if rng.random() < 0.5 else 0.0
        z = max(m.z for m in members) + 1 if on_top else min(m.z for m in members) - 1
        ux, uy = math.cos(direction), math.sin(direction)

        def at(d: float) -> _Layout:
            return _layout(new.geom, new.size, target.dx + d * ux, target.dy + d * uy, angle, z)

        # The closest distance along ``direction`` at which no part is hidden more than tau: bisection between
        # overlapping (near) and apart (bounding circles disjoint, so nothing is hidden).
        lo, hi = 0.0, target.radius + new.radius + 1.0
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (lo + hi)
            worst, _ok = _check_layout([*layouts, at(mid)], cfg.max_overlap)
            if worst <= tau + 1e-9:
                hi = mid
            else:
                lo = mid
        candidate = at(hi)
        _worst, ok = _check_layout([*layouts, candidate], cfg.max_overlap)
        x, y = target.dx + hi * ux, target.dy + hi * uy
        radius = max(max(math.hypot(m.dx, m.dy) + m.radius for m in members), math.hypot(x, y) + new.radius)
        if not ok or radius > self.max_r:
            return None
        new.dx, new.dy, new.dangle, new.z = x, y, angle, z
        return candidate

    def _entry(self, radius: float, y: float) -> float:
        """The largest x at which a cluster of ``radius`` at ``y`` enters: just out of view, or queued behind
        the clusters in its way."""
        x = self.x_lo - radius - 1.0  # entirely out of view: parts never pop into the frame
        for g in self.groups:
            reach = radius + g.radius + _GROUP_GAP
            dy = g.y - y
            if abs(dy) < reach:
                x = min(x, g.x - math.sqrt(reach * reach - dy * dy))
        return x

    def _spawn(self, rng: np.random.Generator) -> None:
        limit = self.x_lo - _QUEUE_LIMIT * self.cfg.part_size[1]
        # Even the smallest part finds no lane free: the entry is jammed, and the arrival is dropped as a full belt
        # would refuse it; checked before building the cluster, which is the expensive part.
        small = 0.5 * self.cfg.part_size[0]
        lanes = np.linspace(self.y_top + small, self.y_bot - small, _SPAWN_TRIES)
        if max(self._entry(small, float(y)) for y in lanes) < limit - small:
            return
        members = self._cluster(rng)
        radius = max(math.hypot(m.dx, m.dy) + m.radius for m in members)
        best: tuple[float, float] | None = None
        y_lo, y_hi = self.y_top + radius, self.y_bot - radius
        for _ in range(_SPAWN_TRIES):
            y = float(rng.uniform(y_lo, y_hi)) if y_hi > y_lo else 0.5 * (self.y_top + self.y_bot)
            x = self._entry(radius, y)
            if best is None or x > best[0]:
                best = (x, y)
        assert best is not None
        if best[0] < limit - radius:
            return  # no room for this cluster: dropped like a jammed arrival
        for m in members:
            m.pid = self.next_pid
            self.next_pid += 1
        omega = math.radians(float(rng.uniform(-self.cfg.rotation, self.cfg.rotation)))
        period, phase = float(rng.uniform(30.0, 90.0)), float(rng.uniform(0.0, 2 * math.pi))
        group = _Group(self.next_order, members, best[0], best[1], radius, 0.0, omega, period, phase)
        self.next_order += 1
        self.groups.append(group)

    def step(self) -> None:
        """Advance one frame: arrivals, motion (front clusters first, followers queue), departures."""
        rng, cfg = self.rng, self.cfg
        for _ in range(int(rng.poisson(self.event_rate))):
            self._spawn(rng)
        moved: list[_Group] = []
        for g in sorted(self.groups, key=lambda g: -g.x):
            wobble = cfg.speed_jitter * math.sin(2 * math.pi * self.t / g.period + g.phase)
            x = g.x + cfg.speed * (1.0 + wobble)
            for ahead in moved:
                reach = g.radius + ahead.radius + _GROUP_GAP
                dy = ahead.y - g.y
                if abs(dy) < reach:
                    x = min(x, ahead.x - math.sqrt(reach * reach - dy * dy))
            g.x = x
            g.angle += g.omega
            moved.append(g)
        self.groups = [g for g in self.groups if g.x - g.radius <= self.x_hi + 2.0]
        self.t += 1

    # -- rendering ------------------------------------------------------------------------------------------------

    def _sprite(self, m: _Member, angle: float) -> _Sprite:
        if m.sprite is not None and abs(angle - m.sprite.angle) < math.radians(_RESHADE_DEG):
            return m.sprite
        matrix = _pose_matrix(_IDENTITY, 0.0, 0.0, angle, m.size)
        x0, y0, alpha8 = _rasterize(m.geom, matrix)
        part = _Part(m.geom, m.size, angle, matrix, x0, y0, alpha8, alpha8 >= 128, _NO_KEYPOINTS)
        alpha = alpha8.astype(np.float32) * np.float32(1.0 / 255.0)
        shadow, pad = _drop_shadow(alpha, part, self.lighting)
        everything = slice(None)
        # A fresh generator from the part's own seed: re-shading keeps its material, brushing and sheen.
        colour = _part_colour(part, alpha, np.random.default_rng(m.seed), self.lighting, everything, everything, None)
        h, w = alpha.shape
        coverage = np.zeros(shadow.shape, np.float32)
        coverage[pad : pad + h, pad : pad + w] = alpha
        premultiplied = cv2.merge([*cv2.split(colour * alpha[..., None]), alpha])
        keep = (np.float32(1.0) - np.float32(self.lighting.shadow_strength) * shadow) * (np.float32(1.0) - coverage)
        # Three equal channels: the composite is then two whole-array OpenCV calls, ~20x faster than NumPy's
        # broadcasting on these small crops.
        keep = cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR)
        area = int(np.count_nonzero(part.mask))
        m.sprite = _Sprite(angle, pad, float(x0), float(y0), premultiplied, keep, area)
        return m.sprite

    def _box(
        self, to_image: np.ndarray, shape: tuple[int, ...]
    ) -> tuple[slice, slice, np.ndarray, tuple[int, int]] | None:
        """Where an image of ``shape`` mapped by ``to_image`` lands in the frame: (rows, cols, the shift to that
        crop, crop size), or None when it is out of frame."""
        h, w = shape[:2]
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        box = _project(to_image, corners)
        x0 = max(math.floor(box[:, 0].min()), 0)
        y0 = max(math.floor(box[:, 1].min()), 0)
        x1 = min(math.ceil(box[:, 0].max()) + 1, self.width)
        y1 = min(math.ceil(box[:, 1].max()) + 1, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        return slice(y0, y1), slice(x0, x1), shift, (x1 - x0, y1 - y0)

    def frame(self, index: int) -> BeltFrame:
        """Render the current state as frame ``index``."""
        width, height = self.width, self.height
        canvas = self.belt.render(self.cfg.speed * self.t)
        imap = np.zeros((height, width), np.uint16)
        drawn: list[tuple[_Member, slice, slice, float, float, float]] = []
        persp = self.persp
        for g in sorted(self.groups, key=lambda g: g.order):
            if g.x + g.radius < self.x_lo - 1.0 or g.x - g.radius > self.x_hi + 1.0:
                continue
            for m in sorted(g.members, key=lambda m: m.z):
                cx, cy, angle = g.pose(m)
                sprite = self._sprite(m, angle)
                rot = angle - sprite.angle
                c, s = math.cos(rot), math.sin(rot)
                # Sprite pixels -> belt plane (turn by what the part rotated since shading, move to its centre)
                # -> image. The shadow-padded ``keep`` starts ``pad`` pixels before ``colour`` on both axes.
                to_image = persp @ np.array(
                    [
                        [c, -s, cx + c * sprite.x0 - s * sprite.y0],
                        [s, c, cy + s * sprite.x0 + c * sprite.y0],
                        [0.0, 0.0, 1.0],
                    ]
                )
                pad = sprite.pad
                padded = to_image @ np.array([[1.0, 0.0, -pad], [0.0, 1.0, -pad], [0.0, 0.0, 1.0]])
                shadow_box = self._box(padded, sprite.keep.shape)
                if shadow_box is None:
                    continue
                # Two warps per part and frame, each over its own extent (the part's colour covers far less than
                # its shadow): few, small OpenCV calls, as each has a fixed threading overhead.
                rows, cols, to_crop, size = shadow_box
                keep = cv2.warpPerspective(
                    sprite.keep, to_crop @ padded, size, flags=cv2.INTER_LINEAR, borderValue=(1.0, 1.0, 1.0, 1.0)
                )
                region = canvas[rows, cols]
                cv2.multiply(region, keep, dst=region)  # shadow and coverage: what is below shows through
                part_box = self._box(to_image, sprite.colour.shape)
                if part_box is None:
                    continue
                rows, cols, to_crop, size = part_box
                colour = cv2.warpPerspective(sprite.colour, to_crop @ to_image, size, flags=cv2.INTER_LINEAR)
                region = canvas[rows, cols]
                cv2.add(region, cv2.cvtColor(colour, cv2.COLOR_BGRA2BGR), dst=region)
                mask = colour[..., 3] >= 0.5  # the same coverage that was blended: masks sit on the drawn edges
                if not mask.any():
                    continue
                imap[rows, cols][mask] = len(drawn) + 1
                w_ = persp[2, 0] * cx + persp[2, 1] * cy + persp[2, 2]
                full = sprite.area * abs(np.linalg.det(persp)) / abs(w_) ** 3  # area scale of the homography
                drawn.append((m, rows, cols, full, cx, cy))

        cv2.multiply(canvas, self.light, dst=canvas)
        image = cv2.convertScaleAbs(canvas)
        # Blur after quantising: half the cost on 8-bit data, and invisible next to the noise added after it.
        _apply_blur(image, *self.blur)
        if self.noise is not None:
            n = image.size
            start = int(self.noise_rng.integers(0, self.noise.size - n + 1))
            image = cv2.add(image, self.noise[start : start + n].reshape(image.shape), dtype=cv2.CV_8U)

        # Annotate parts with enough visible pixels; relabel them 1..N in drawing order, the rest to background.
        subs = [imap[rows, cols] == k + 1 for k, (_, rows, cols, _, _, _) in enumerate(drawn)]
        ids, classes, boxes, centers, visibility = [], [], [], [], []
        for k, (m, rows, cols, full, cx, cy) in enumerate(drawn):
            sub = subs[k]
            visible = int(np.count_nonzero(sub))
            if visible == 0:
                continue
            region = imap[rows, cols]
            if visible < MIN_PIXELS:
                region[sub] = 0
                continue
            region[sub] = len(ids) + 1
            ys = np.flatnonzero(sub.any(axis=1))
            xs = np.flatnonzero(sub.any(axis=0))
            boxes.append((cols.start + xs[0], rows.start + ys[0], cols.start + xs[-1] + 1, rows.start + ys[-1] + 1))
            ids.append(m.pid)
            classes.append(m.cls)
            centers.append((cx, cy))
            visibility.append(min(visible / max(full, 1.0), 1.0))
        n = len(ids)
        centres = _project(persp, np.array(centers, np.float64).reshape(n, 2)) if n else np.zeros((0, 2))
        return BeltFrame(
            index=index,
            image=image,
            instance_map=imap,
            ids=np.array(ids, np.int64),
            classes=np.array(classes, np.int64),
            boxes=np.array(boxes, np.float32).reshape(n, 4),
            centers=centres.astype(np.float32).reshape(n, 2),
            visibility=np.array(visibility, np.float32),
        )


def _check_frames(frames: object, minimum: int = 0) -> int:
    if isinstance(frames, (bool, np.bool_)) or not isinstance(frames, (int, np.integer)) or frames < minimum:
        raise ValueError(f"frames={frames!r} must be an integer >= {minimum}")
    return int(frames)


def render_belt(
    frames: int, seed: int | np.random.SeedSequence, config: BeltConfig | None = None
) -> Iterator[BeltFrame]:
    """Render a conveyor-belt sequence frame by frame. The same seed and config give byte-identical frames, and a
    shorter sequence is a prefix of a longer one.

    Args:
        frames: number of frames, >= 0.
        seed: a non-negative int or a SeedSequence; all randomness comes from it.
        config: sequence settings; default ``BeltConfig()``.

    Returns:
        An iterator of ``BeltFrame`` (frames are rendered as they are requested).

    Raises:
        ValueError: for an invalid config (see ``BeltConfig.validate``), frame count or seed; raised by this
            call, before the first frame.
    """
    config = BeltConfig() if config is None else config
    config.validate()
    count = _check_frames(frames)
    _seed_sequence(seed)  # validate now rather than on the first next()
    return _frames(count, seed, config)


def _frames(count: int, seed: int | np.random.SeedSequence, config: BeltConfig) -> Iterator[BeltFrame]:
    sequence = _Sequence(seed, config)
    for i in range(count):
        yield sequence.frame(i)
        sequence.step()


# ----------------------------------------------------------------------------------------------------------------
# Counting ground truth


def counting_line(config: BeltConfig | None = None) -> tuple[float, float, float, float]:
    """The default counting line of a belt sequence: vertical through the middle of the frame, drawn bottom to top.

    With the counters' convention (``edgeseg.counting``: "in" is crossing from the left-hand to the right-hand side
    of the directed line), a part riding the belt left to right crosses it "in".
    """
    config = BeltConfig() if config is None else config
    x = config.width / 2.0
    return (x, float(config.height), x, 0.0)


class _Tally:
    """Per-part line crossings of the ground truth, by the box-centre convention the counters use."""

    def __init__(self, line: Sequence[float], names: Sequence[str] = CLASSES) -> None:
        self.a = np.array(line[:2], np.float64)
        self.d = np.array(line[2:], np.float64) - self.a
        if len(line) != 4 or not np.all(np.isfinite(np.asarray(line, np.float64))) or not self.d.any():
            raise ValueError(f"line={tuple(line)!r} must be 4 finite numbers x1, y1, x2, y2 with distinct ends")
        self.names = tuple(names)
        self.counts = {name: {"in": 0, "out": 0} for name in self.names}
        self.last: dict[int, tuple[float, np.ndarray]] = {}  # id -> (side, anchor) of its last off-line sighting
        self.done: set[tuple[int, str]] = set()

    def add(self, frame: BeltFrame) -> None:
        centres = (frame.boxes[:, :2].astype(np.float64) + frame.boxes[:, 2:]) / 2.0
        rel = centres - self.a
        sides = np.sign(self.d[0] * rel[:, 1] - self.d[1] * rel[:, 0])
        for pid, cls, side, p in zip(frame.ids.tolist(), frame.classes.tolist(), sides.tolist(), centres):
            if side == 0:
                continue  # on the line: not on either side yet
            prev = self.last.get(pid)
            self.last[pid] = (side, p)
            if prev is None or prev[0] == side:
                continue
            # The move prev -> p crosses the infinite line; count it if the crossing point is on the segment.
            q0, s0 = prev[1], self.d[0] * (prev[1][1] - self.a[1]) - self.d[1] * (prev[1][0] - self.a[0])
            s1 = self.d[0] * (p[1] - self.a[1]) - self.d[1] * (p[0] - self.a[0])
            hit = q0 + (p - q0) * (s0 / (s0 - s1))
            u = float(np.dot(hit - self.a, self.d) / np.dot(self.d, self.d))
            direction = "in" if side > 0 else "out"
            if -1e-9 <= u <= 1 + 1e-9 and (pid, direction) not in self.done:
                self.done.add((pid, direction))
                self.counts[self.names[cls]][direction] += 1


def true_counts(frames: Iterable[BeltFrame], line: Sequence[float] | None = None) -> dict[str, dict[str, int]]:
    """The true line crossings of a belt sequence, per class name and direction.

    A part is counted when the centre of its visible box moves from one side of ``line`` to the other between two
    frames it is annotated in and the crossing point lies on the segment; once per part and direction. "in" is
    from the line's left-hand to its right-hand side (on screen, walking from ``x1, y1`` to ``x2, y2``): with the
    default line that is the belt's own direction. This is what ``edgeseg.counting.LineCounter`` counts when fed
    the ground-truth ids, boxes and classes, so a perfect tracker reproduces these counts exactly.

    Args:
        frames: the sequence's frames (consumed once; images are not kept).
        line: ``x1, y1, x2, y2``; default ``counting_line`` for the frames' size.

    Returns:
        ``{class name: {"in": n, "out": n}}`` for every name in ``CLASSES``.
    """
    tally: _Tally | None = None if line is None else _Tally(line)
    for frame in frames:
        if tally is None:
            h, w = frame.instance_map.shape
            tally = _Tally((w / 2.0, float(h), w / 2.0, 0.0))
        tally.add(frame)
    return {name: {"in": 0, "out": 0} for name in CLASSES} if tally is None else tally.counts


# ----------------------------------------------------------------------------------------------------------------
# Video and ground-truth files

_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}


def _coco_annotations(frame: BeltFrame, image_id: int, first_id: int) -> list[dict]:
    from ..masks import InstanceMasks

    boxes = frame.boxes.astype(np.int64)
    rects = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    # Crops of the instance map within each box: no (N, H, W) stack is ever built.
    crops = [frame.instance_map[y1:y2, x1:x2] == i + 1 for i, (x1, y1, x2, y2) in enumerate(boxes.tolist())]
    rles = InstanceMasks.from_crops(rects.reshape(-1, 4), crops, frame.instance_map.shape).rle()
    return [
        {
            "id": first_id + i,
            "image_id": image_id,
            "video_id": 1,
            "track_id": int(frame.ids[i]),
            "category_id": int(frame.classes[i]) + 1,
            "segmentation": rles[i],
            "area": float(np.count_nonzero(crops[i])),
            "bbox": [float(v) for v in rects[i]],
            "iscrowd": 0,
            "visibility": round(float(frame.visibility[i]), 4),
        }
        for i in range(len(frame))
    ]


def _publish(tmp: str, final: Path, overwrite: bool) -> None:
    """Move our finished temporary file to ``final``; without ``overwrite`` never replace a file that is there."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic "create if absent": fails if a file appeared since we checked
    except FileExistsError:
        raise FileExistsError(f"{final} exists: pass overwrite=True to replace it") from None
    except OSError:
        # Hard links unsupported (some network and FAT file systems): check, then rename.
        if os.path.lexists(final):
            raise FileExistsError(f"{final} exists: pass overwrite=True to replace it") from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def _temp(folder: Path, name: str, suffix: str) -> str:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    with contextlib.suppress(AttributeError, OSError):
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs should read like plain writes
    return tmp


def write_belt_video(
    path: str | os.PathLike,
    frames: int,
    seed: int | np.random.SeedSequence,
    config: BeltConfig | None = None,
    *,
    line: Sequence[float] | None = None,
    overwrite: bool = False,
) -> BeltVideo:
    """Render a belt sequence to a video file, with its ground truth next to it.

    Files (``<stem>`` is the video's name without its suffix):

    - the video: ``.mp4`` (fourcc ``mp4v``) or ``.avi`` (Motion JPEG), at ``config.fps``;
    - ``<stem>.gt.txt``: MOTChallenge ground truth, one line ``frame,id,x,y,w,h,1,class,visibility`` per annotated
      part per frame: 1-based frame, persistent id, the tight box (0-based pixel left, top, width, height: the
      convention of edgeseg's boxes), 1 (consider), class index + 1 (the COCO category id), visible fraction;
    - ``<stem>.gt.json``: COCO-style instances with one image per frame (``id`` = 1-based frame, ``frame_index``
      0-based) and annotations carrying ``track_id``, ``category_id``, ``bbox``, ``area``, RLE ``segmentation`` and
      ``visibility``; categories are ``CLASSES`` with ``id = index + 1``;
    - ``<stem>.counts.json``: the counting line and the true per-class, per-direction crossings (``true_counts``).

    Every file is written to a temporary file in the same folder and renamed into place once complete.

    Args:
        path: the video file; its suffix picks the container.
        frames: number of frames, >= 1.
        seed: a non-negative int or a SeedSequence.
        config: sequence settings; default ``BeltConfig()``.
        line: the counting line ``x1, y1, x2, y2``; default ``counting_line(config)``.
        overwrite: replace existing files; without it an existing video or ground-truth file is an error.

    Raises:
        ValueError: an unsupported suffix, an invalid config, frame count, seed or line.
        FileExistsError: one of the files exists and ``overwrite`` is false.
        OSError: the folder is missing or not writable, or OpenCV cannot write this container.
    """
    out = Path(os.fsdecode(path))
    suffix = out.suffix.lower()
    if suffix not in _FOURCC:
        raise ValueError(f"{out}: unsupported video suffix {out.suffix!r}: use .mp4 (mp4v) or .avi (Motion JPEG)")
    config = BeltConfig() if config is None else config
    config.validate()
    count = _check_frames(frames, minimum=1)
    _seed_sequence(seed)
    line = counting_line(config) if line is None else tuple(float(v) for v in line)
    tally = _Tally(line)  # validates the line
    stem = out.name[: -len(out.suffix)]
    folder = out.parent
    targets = [out, folder / f"{stem}.gt.txt", folder / f"{stem}.gt.json", folder / f"{stem}.counts.json"]
    if not folder.is_dir():
        raise OSError(f"{folder} is not a folder")
    if not overwrite:
        for target in targets:
            if os.path.lexists(target):
                raise FileExistsError(f"{target} exists: pass overwrite=True to replace it")

    temps: list[str] = []
    published: list[Path] = []
    try:
        temps.append(_temp(folder, out.name, suffix))
        writer = cv2.VideoWriter(
            temps[0], cv2.VideoWriter_fourcc(*_FOURCC[suffix]), float(config.fps), (config.width, config.height)
        )
        if not writer.isOpened():
            raise OSError(f"OpenCV could not open a {suffix} writer ({_FOURCC[suffix]}) for {out}")
        mot: list[str] = []
        images: list[dict] = []
        annotations: list[dict] = []
        try:
            for frame in _frames(count, seed, config):
                writer.write(frame.image)
                tally.add(frame)
                number = frame.index + 1
                for pid, cls, box, vis in zip(
                    frame.ids.tolist(), frame.classes.tolist(), frame.boxes.tolist(), frame.visibility.tolist()
                ):
                    x1, y1, x2, y2 = (int(v) for v in box)
                    mot.append(f"{number},{pid},{x1},{y1},{x2 - x1},{y2 - y1},1,{cls + 1},{vis:.3f}\n")
                images.append(
                    {
                        "id": number,
                        "video_id": 1,
                        "frame_index": frame.index,
                        "file_name": out.name,
                        "width": config.width,
                        "height": config.height,
                    }
                )
                annotations.extend(_coco_annotations(frame, number, len(annotations) + 1))
        finally:
            writer.release()
        if os.path.getsize(temps[0]) == 0:
            raise OSError(f"OpenCV wrote nothing to {out}")

        info = {
            "description": "edgeseg.synthparts synthetic conveyor-belt sequence",
            "seed": int(seed) if not isinstance(seed, np.random.SeedSequence) else repr(seed),
            "config": dataclasses.asdict(config),
        }
        video = {
            "id": 1,
            "file_name": out.name,
            "width": config.width,
            "height": config.height,
            "length": count,
            "fps": config.fps,
        }
        categories = [{"id": k + 1, "name": name, "supercategory": "part"} for k, name in enumerate(CLASSES)]
        coco = {
            "info": info,
            "videos": [video],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        counts = tally.counts
        summary = {
            "video": out.name,
            "frames": count,
            "line": list(line),
            "anchor": "center",
            "in": "crossing from the left-hand to the right-hand side of the line x1,y1 -> x2,y2 as seen on screen",
            "counts": counts,
            "total": {d: sum(c[d] for c in counts.values()) for d in ("in", "out")},
        }
        payloads = [
            "".join(mot).encode(),
            json.dumps(coco, separators=(",", ":")).encode(),
            (json.dumps(summary, indent=2) + "\n").encode(),
        ]
        for target, payload in zip(targets[1:], payloads):
            tmp = _temp(folder, target.name, ".part")
            temps.append(tmp)
            with open(tmp, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        for tmp, target in zip(temps, targets):
            _publish(tmp, target, overwrite)
            published.append(target)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for target in published:  # ours, from this call: do not leave half a set behind
            with contextlib.suppress(OSError):
                os.unlink(target)
        raise
    return BeltVideo(
        path=targets[0],
        mot_path=targets[1],
        coco_path=targets[2],
        counts_path=targets[3],
        frames=count,
        fps=float(config.fps),
        width=config.width,
        height=config.height,
        line=line,  # type: ignore[arg-type]
        counts=counts,
    )
