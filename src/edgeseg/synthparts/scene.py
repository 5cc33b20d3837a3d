"""Rendering of one synthetic conveyor-belt scene: belt, parts, shadows, lighting, camera effects, instance map.

A part's outline is mapped from part-local units straight into the image (scale, rotation, placement and the
scene's perspective are one 3x3 matrix), filled at 4x resolution and box-filtered down. The result is its
anti-aliased coverage; the instance mask is "coverage >= 1/2", so masks sit exactly on the drawn edges and stay
hard 0/1. Parts are placed bottom to top and every placement is checked against the instance map built so far:
one that would leave any part (itself included) too little visible, split in two, or with its telling feature
hidden is rejected and tried elsewhere, so every part in the image carries a label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import cv2
import numpy as np

from .parts import BASE_KINDS, BASE_WEIGHTS, CLASSES, DEFECT_OF, PartGeometry, make_part, shade_part

MIN_PIXELS = 40
"""Fewest visible pixels an annotated instance may have."""

_SUPERSAMPLE = 4  # coverage levels in steps of 1/16: smooth edges, and the 1/2 threshold is exact
_FIX_BITS = 4  # cv2 fixed-point fraction bits for sub-pixel vertex positions
_TRIES = 12  # placement attempts per part before it is dropped


@dataclass(frozen=True)
class SceneConfig:
    """What a scene may contain and how strongly the camera effects may degrade it.

    Effect strengths (``blur``, ``noise``, ``perspective``) are maxima: each scene draws its own strength
    uniformly between 0 and the maximum.

    Attributes:
        width, height: image size in pixels.
        min_parts, max_parts: the number of parts a scene tries to place is drawn uniformly from this range;
            a very crowded frame can end up with fewer when placements keep being rejected.
        part_size: smallest and largest outer extent of a part in pixels, before perspective.
        defect_rate: probability that a washer or a bracket is drawn as its defective class.
        overlap: 0 keeps parts apart (never touching); higher values let more placements cluster against other
            parts, and a part may have up to this fraction of its area covered by parts above it.
        min_visible: placements that would leave a part with less than this fraction of its area visible
            (occluded or outside the frame) are rejected, as are those leaving fewer than 40 visible pixels.
        blur: largest blur sigma in pixels (Gaussian, or motion blur of similar length); 0 disables.
        noise: largest standard deviation of the additive pixel noise (in 0..255 levels); 0 disables.
        perspective: largest displacement of an image corner, as a fraction of the image size; 0 disables.
    """

    width: int = 512
    height: int = 384
    min_parts: int = 3
    max_parts: int = 12
    part_size: tuple[float, float] = (56.0, 120.0)
    defect_rate: float = 0.25
    overlap: float = 0.35
    min_visible: float = 0.4
    blur: float = 1.0
    noise: float = 6.0
    perspective: float = 0.06

    def validate(self) -> None:
        """Raise ValueError naming the first field that is out of range, with its value and the allowed range."""
        _check_number("width", self.width, 64, 8192, integer=True)
        _check_number("height", self.height, 64, 8192, integer=True)
        _check_number("max_parts", self.max_parts, 1, 1000, integer=True)
        _check_number("min_parts", self.min_parts, 0, self.max_parts, integer=True, hi_text="max_parts")
        check_part_size("SceneConfig", self.part_size, min(self.width, self.height), "the smaller image side")
        _check_number("defect_rate", self.defect_rate, 0, 1)
        _check_number("overlap", self.overlap, 0, 1)
        _check_number("min_visible", self.min_visible, 0, 1)
        _check_number("blur", self.blur, 0, 10)
        _check_number("noise", self.noise, 0, 64)
        _check_number("perspective", self.perspective, 0, 0.25)


def check_part_size(owner: str, size: object, side: float, side_text: str) -> None:
    """Raise ValueError unless ``size`` is ``(min, max)`` with ``16 <= min <= max <= side``."""
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(_is_number(s) for s in size)
        and 16 <= size[0] <= size[1] <= side
    )
    if not ok:
        raise ValueError(
            f"{owner}.part_size={size!r} is out of range: use (min, max) with 16 <= min <= max <= {side:g} "
            f"({side_text})"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_number(
    name: str,
    value: object,
    lo: float,
    hi: float,
    integer: bool = False,
    hi_text: str | None = None,
    owner: str = "SceneConfig",
) -> None:
    limit = f"{lo:g}..{hi:g}" if hi_text is None else f"{lo:g}..{hi_text} ({hi:g})"
    if not _is_number(value) or (integer and not isinstance(value, (int, np.integer))):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{owner}.{name}={value!r} is not {kind}: use {limit}")
    if not lo <= value <= hi:  # written this way so that NaN fails too
        raise ValueError(f"{owner}.{name}={value!r} is out of range: use {limit}")


@dataclass
class Scene:
    """One rendered scene and its instance annotations.

    Attributes:
        image: (H, W, 3) uint8 BGR image.
        instance_map: (H, W) uint16; 0 is background, ``i + 1`` marks the visible pixels of instance ``i``.
            Instances are in drawing order (bottom first), so visible masks are disjoint.
        classes: (N,) int64 class indices into ``CLASSES``.
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` (x2, y2 exclusive), tight around each visible mask.
        centers: (N, 2) float32 ``x, y`` image position of each part's local origin (the centre of a washer's or
            a nut's hole, the middle of a bolt or bracket's bounding box).
        full_areas: (N,) int64 pixel area of each part's whole mask, occluded and out-of-frame pixels included.
    """

    image: np.ndarray
    instance_map: np.ndarray
    classes: np.ndarray
    boxes: np.ndarray
    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    full_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def masks(self) -> np.ndarray:
        """(N, H, W) bool visible masks (memory grows with N x H x W)."""
        return masks_of(self.instance_map, len(self))

    def __len__(self) -> int:
        return len(self.classes)


def masks_of(instance_map: np.ndarray, n: int) -> np.ndarray:
    """(n, H, W) bool masks of an instance map where ``i + 1`` marks instance ``i`` (0 is background)."""
    ids = np.arange(1, n + 1, dtype=instance_map.dtype)
    return instance_map[None] == ids[:, None, None]


@dataclass
class _Part:
    """A placed part: its geometry, pose and rasterised coverage (crop at ``x0, y0``, may overhang the frame)."""

    geom: PartGeometry
    size: float
    angle: float
    matrix: np.ndarray  # local units -> image pixels (3x3, projective)
    x0: int
    y0: int
    alpha: np.ndarray  # uint8 coverage, 255 = fully covered
    mask: np.ndarray  # bool, coverage >= 1/2
    keypoints: np.ndarray  # (K, 3) x, y, radius in image pixels
    full_area: int = 0
    visible: int = 0
    occluded: int = 0

    def clip(self, width: int, height: int) -> tuple[slice, slice, slice, slice] | None:
        """(image rows, image cols, crop rows, crop cols) of the in-frame part of the crop, or None."""
        h, w = self.mask.shape
        ix0, iy0 = max(self.x0, 0), max(self.y0, 0)
        ix1, iy1 = min(self.x0 + w, width), min(self.y0 + h, height)
        if ix1 <= ix0 or iy1 <= iy0:
            return None
        return (
            slice(iy0, iy1),
            slice(ix0, ix1),
            slice(iy0 - self.y0, iy1 - self.y0),
            slice(ix0 - self.x0, ix1 - self.x0),
        )


def _project(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = pts @ matrix[:, :2].T + matrix[:, 2]
    return q[:, :2] / q[:, 2:3]


def _rasterize(geom: PartGeometry, matrix: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Anti-aliased coverage of ``geom`` under ``matrix``: (x0, y0, uint8 crop)."""
    outer = [_project(matrix, p) for p in geom.outer]
    holes = [_project(matrix, p) for p in geom.holes]
    pts = np.concatenate(outer)
    x0, y0 = (math.floor(c) - 2 for c in pts.min(axis=0))
    x1, y1 = (math.ceil(c) + 3 for c in pts.max(axis=0))
    s = _SUPERSAMPLE
    origin = np.array([x0, y0], np.float64)
    big = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)

    def fixed(p: np.ndarray) -> np.ndarray:
        # Pixel centres are at integer coordinates (OpenCV's convention); sub-pixel k of pixel c sits at
        # c - 1/2 + (k + 1/2) / s, which is what this maps to integer k on the fine grid.
        return np.round((s * (p - origin + 0.5) - 0.5) * (1 << _FIX_BITS)).astype(np.int32)

    for p in outer:
        cv2.fillPoly(big, [fixed(p)], 255, cv2.LINE_8, _FIX_BITS)
    if holes:
        cv2.fillPoly(big, [fixed(p) for p in holes], 0, cv2.LINE_8, _FIX_BITS)
    alpha = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return x0, y0, alpha


def _pose_matrix(persp: np.ndarray, cx: float, cy: float, angle: float, size: float) -> np.ndarray:
    c, s = math.cos(angle) * size, math.sin(angle) * size
    return persp @ np.array([[c, -s, cx], [s, c, cy], [0.0, 0.0, 1.0]])


def _perspective(rng: np.random.Generator, width: int, height: int, strength: float) -> np.ndarray:
    """Belt-plane to image homography: the image corners moved by up to ``strength`` of the image size."""
    amount = rng.uniform(0.0, strength)
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    dst = src + (rng.uniform(-amount, amount, (4, 2)) * [width, height]).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def _connected(mask: np.ndarray) -> bool:
    n, _ = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    return n <= 2


def _window(mask: np.ndarray, x0: int, y0: int, kp: np.ndarray) -> np.ndarray:
    """The part of ``mask`` (placed at x0, y0) inside the square around keypoint ``kp`` (x, y, radius)."""
    x, y, r = kp
    h, w = mask.shape
    c0, c1 = max(math.floor(x - r) - x0, 0), min(math.ceil(x + r) + 1 - x0, w)
    r0, r1 = max(math.floor(y - r) - y0, 0), min(math.ceil(y + r) + 1 - y0, h)
    return mask[r0:r1, c0:c1] if c1 > c0 and r1 > r0 else mask[:0, :0]


class _Placer:
    """Adds parts bottom to top, keeping the instance map and every part's visible area up to date."""

    def __init__(self, config: SceneConfig, persp: np.ndarray) -> None:
        self.cfg = config
        self.persp = persp
        self.width, self.height = config.width, config.height
        self.imap = np.zeros((self.height, self.width), np.uint16)
        self.parts: list[_Part] = []
        self.centres: list[tuple[float, float]] = []  # belt-plane centres, for clustered placements

    def _need(self, full_area: int) -> float:
        return max(self.cfg.min_visible * full_area, MIN_PIXELS)

    def _keypoints_in_frame(self, kps: np.ndarray) -> bool:
        if not len(kps):
            return True
        x, y, r = kps[:, 0], kps[:, 1], kps[:, 2]
        return bool(np.all((x - r >= 0) & (y - r >= 0) & (x + r <= self.width - 1) & (y + r <= self.height - 1)))

    def try_place(self, geom: PartGeometry, size: float, rng: np.random.Generator) -> bool:
        """Try a few random poses for ``geom``; keep the first acceptable one. Returns whether it was placed."""
        cfg = self.cfg
        for _ in range(_TRIES):
            angle = rng.uniform(0.0, 2 * math.pi)
            if self.parts and rng.random() < cfg.overlap:
                # Clustered placement: right next to (or partly over) a part already down.
                j = int(rng.integers(len(self.parts)))
                direction = rng.uniform(0.0, 2 * math.pi)
                dist = (self.parts[j].size + size) / 2 * rng.uniform(0.45, 1.0)
                cx = self.centres[j][0] + dist * math.cos(direction)
                cy = self.centres[j][1] + dist * math.sin(direction)
            else:
                # Centres up to ~0.3 extent from the border: parts may be cut by the frame a little.
                margin = 0.3 * size
                cx = rng.uniform(margin, self.width - margin)
                cy = rng.uniform(margin, self.height - margin)
            matrix = _pose_matrix(self.persp, cx, cy, angle, size)
            x0, y0, alpha = _rasterize(geom, matrix)
            kps = geom.keypoints
            if len(kps):
                kps = np.concatenate([_project(matrix, kps[:, :2]), kps[:, 2:] * size], axis=1)
            part = _Part(geom, size, angle, matrix, x0, y0, alpha, alpha >= 128, kps)
            if self._accept(part):
                self.centres.append((cx, cy))
                return True
        return False

    def _accept(self, part: _Part) -> bool:
        cfg = self.cfg
        full = int(np.count_nonzero(part.mask))
        if full < MIN_PIXELS:
            return False
        clip = part.clip(self.width, self.height)
        if clip is None:
            return False
        rows, cols, crows, ccols = clip
        sub = part.mask[crows, ccols]
        in_frame = int(np.count_nonzero(sub))
        if in_frame < self._need(full) or not self._keypoints_in_frame(part.keypoints):
            return False
        if in_frame < full and not _connected(sub):
            return False
        region = self.imap[rows, cols]
        if cfg.overlap == 0:
            # "Never touch": keep a one-pixel belt gap around every part.
            grown = cv2.dilate(part.mask.view(np.uint8), np.ones((3, 3), np.uint8))[crows, ccols].view(bool)
            if np.any(region[grown]):
                return False
        # The new part's own telling features (hole sites, the gap) must show belt, not a part below.
        for kp in part.keypoints:
            win = _window(self.imap, 0, 0, kp)
            if np.any(win):
                return False
        under = region[sub]
        hidden = np.bincount(under, minlength=len(self.parts) + 1)
        hidden[0] = 0
        for j in np.flatnonzero(hidden):
            below = self.parts[j - 1]
            h = int(hidden[j])
            if below.visible - h < self._need(below.full_area) or below.occluded + h > cfg.overlap * below.full_area:
                return False
            if any(np.any(_window(part.mask, part.x0, part.y0, kp)) for kp in below.keypoints):
                return False
            if not self._stays_connected(j, part):
                return False
        # Accepted: commit to the instance map and the visible-area bookkeeping.
        new_id = len(self.parts) + 1
        region[sub] = new_id
        for j in np.flatnonzero(hidden):
            self.parts[j - 1].visible -= int(hidden[j])
            self.parts[j - 1].occluded += int(hidden[j])
        part.full_area, part.visible = full, in_frame
        self.parts.append(part)
        return True

    def _stays_connected(self, j: int, top: _Part) -> bool:
        """Whether part ``j`` (1-based id) stays one piece once ``top`` covers it."""
        below = self.parts[j - 1]
        rows, cols, _, _ = below.clip(self.width, self.height)
        vis = self.imap[rows, cols] == j
        # Overlap of the two crops in image coordinates, then cut the top part's mask out of ``vis``.
        th, tw = top.mask.shape
        ox0, ox1 = max(cols.start, top.x0), min(cols.stop, top.x0 + tw)
        oy0, oy1 = max(rows.start, top.y0), min(rows.stop, top.y0 + th)
        if ox1 > ox0 and oy1 > oy0:
            cover = top.mask[oy0 - top.y0 : oy1 - top.y0, ox0 - top.x0 : ox1 - top.x0]
            vis[oy0 - rows.start : oy1 - rows.start, ox0 - cols.start : ox1 - cols.start] &= ~cover
        return _connected(vis)


def _normal_table() -> np.ndarray:
    # Quantiles of N(0, 1) at the centres of 256 equal-probability bins: a uniform random byte looked up here is
    # a (quantised) Gaussian sample, ~10x cheaper than Generator.standard_normal for a frame's 600k values.
    dist = NormalDist()
    return np.array([dist.inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


_NORMAL_TABLE = _normal_table()


def _fast_normal(
    rng: np.random.Generator, shape: tuple[int, ...], std: float = 1.0, dtype: type = np.float32
) -> np.ndarray:
    """Gaussian noise (256 levels, |z| < 2.9) of the given std, as float32 or (rounded) int16."""
    raw = np.frombuffer(rng.bytes(int(np.prod(shape))), np.uint8).reshape(shape)
    table = _NORMAL_TABLE * np.float32(std)
    if dtype is np.int16:
        table = np.rint(table).astype(np.int16)
    return cv2.LUT(raw, table)


@dataclass(frozen=True)
class _Illumination:
    """Uneven light: a linear gradient plus a vignette, separable so that any crop of it is cheap."""

    width: int
    height: int
    gx: float
    gy: float
    vignette: float
    cx: float
    cy: float

    @classmethod
    def random(cls, rng: np.random.Generator, width: int, height: int) -> _Illumination:
        gx, gy = (float(g) for g in rng.uniform(-0.15, 0.15, 2))
        cx, cy = (float(c) for c in rng.uniform(-0.3, 0.3, 2))
        return cls(width, height, gx, gy, float(rng.uniform(0.0, 0.22)), cx, cy)

    def at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """(len(ys), len(xs)) float32 gain at image pixel coordinates ``xs`` (columns) and ``ys`` (rows)."""
        xn = np.asarray(xs, np.float32) * np.float32(2.0 / max(self.width - 1, 1)) - np.float32(1.0)
        yn = np.asarray(ys, np.float32) * np.float32(2.0 / max(self.height - 1, 1)) - np.float32(1.0)
        fx = 1.0 + self.gx * xn - self.vignette * (xn - self.cx) ** 2
        fy = self.gy * yn - self.vignette * (yn - self.cy) ** 2
        return fy[:, None] + fx[None, :]


_BELT_TINTS = np.array([[1.0, 1.0, 1.0], [0.86, 1.12, 0.9], [1.2, 1.0, 0.84]], np.float32)  # grey, green, blue (BGR)


def _belt(rng: np.random.Generator, width: int, height: int, light: _Illumination) -> np.ndarray:
    """A lit rubber belt, (H, W, 3) float32: tinted dark base, mottling, streaks along the running direction,
    fine grain, maybe a seam.

    The texture is built at half resolution and upsampled once: full-frame float temporaries are what makes a
    frame slow (each fresh one costs page faults), and rubber grain has no detail finer than that anyway.
    """
    lum = rng.uniform(30.0, 75.0)
    tint = _BELT_TINTS[rng.integers(len(_BELT_TINTS))] * rng.uniform(0.95, 1.05, 3)
    along_x = rng.random() < 0.7
    # Work in belt orientation (running along x) and transpose at the end if the belt runs along y.
    w, h = (width // 2 + 1, height // 2 + 1) if along_x else (height // 2 + 1, width // 2 + 1)
    mottle = rng.standard_normal((h // 12 + 2, w // 12 + 2)).astype(np.float32)
    tex = cv2.resize(mottle, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(0.03, 0.08))
    stretched = rng.standard_normal((h, w // 20 + 2)).astype(np.float32) * np.float32(rng.uniform(0.02, 0.05))
    tex += cv2.resize(stretched, (w, h), interpolation=cv2.INTER_LINEAR)
    streak = rng.standard_normal(h).astype(np.float32)
    streak = np.convolve(streak, np.array([0.25, 0.5, 0.25], np.float32), mode="same")
    tex += streak[:, None] * np.float32(rng.uniform(0.02, 0.05))
    tex += _fast_normal(rng, (h, w), rng.uniform(0.03, 0.07))
    tex += np.float32(1.0)
    if rng.random() < 0.35:
        # A vulcanised seam across the belt.
        x = int(rng.integers(0, w - 2))
        tex[:, x : x + int(rng.integers(1, 3))] *= np.float32(rng.uniform(0.75, 0.9))
    if not along_x:
        tex = tex.T
    # Half-resolution sample k sits at full-resolution coordinate (k + 1/2) * full / half - 1/2.
    hh, wh = tex.shape
    xs = (np.arange(wh) + 0.5) * (width / wh) - 0.5
    ys = (np.arange(hh) + 0.5) * (height / hh) - 0.5
    tex = tex * light.at(xs, ys)
    belt = cv2.cvtColor(cv2.resize(tex, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR)
    colour = lum * tint
    cv2.multiply(belt, (float(colour[0]), float(colour[1]), float(colour[2]), 0.0), dst=belt)
    return belt


_MATERIALS = np.array(
    [
        [182, 180, 176],  # bright steel
        [200, 192, 182],  # blue-ish zinc
        [104, 176, 198],  # yellow zinc chromate
        [128, 126, 124],  # dark oxide / phosphate (still well above the belt)
        [150, 155, 160],  # matte steel
    ],
    np.float32,
)


@dataclass(frozen=True)
class _Lighting:
    """Scene-wide light: direction (unit 3-vector, z towards the camera), shadow shape, and the uneven field."""

    direction: tuple[float, float, float]
    shadow_len: float
    shadow_strength: float
    field: _Illumination


def _drop_shadow(alpha: np.ndarray, part: _Part, lighting: _Lighting) -> tuple[np.ndarray, int]:
    """``part``'s drop shadow: its coverage ``alpha`` (float32, 0..1) shifted away from the light and blurred.

    Returns the shadow on the crop grown by ``pad`` pixels on every side, and ``pad``.
    """
    h, w = alpha.shape
    lx, ly, _ = lighting.direction
    norm = max(math.hypot(lx, ly), 1e-6)
    l2x, l2y = lx / norm, ly / norm
    length = max(1.5, part.geom.height * part.size * lighting.shadow_len)
    sigma = 1.0 + 0.35 * length
    dx, dy = round(-l2x * length), round(-l2y * length)
    pad = math.ceil(length + 3 * sigma) + 1
    shadow = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    shadow[pad + dy : pad + dy + h, pad + dx : pad + dx + w] = alpha
    return cv2.GaussianBlur(shadow, (0, 0), sigma), pad


def _part_colour(
    part: _Part,
    alpha: np.ndarray,
    rng: np.random.Generator,
    lighting: _Lighting,
    crows: slice,
    ccols: slice,
    field_: _Illumination | None,
) -> np.ndarray:
    """BGR float32 colour of the ``crows, ccols`` window of ``part``'s crop (not yet blended, no coverage applied).

    ``alpha`` is the part's float32 coverage (0..1). ``field_`` is the uneven light to multiply in, or None to
    leave the colour unlit (a caller that lights the whole frame at once). Draws from ``rng`` in a fixed order.
    """
    h, w = part.alpha.shape
    lx, ly, lz = lighting.direction
    norm = max(math.hypot(lx, ly), 1e-6)
    l2x, l2y = lx / norm, ly / norm

    # Part-local coordinates of every crop pixel (exact inverse of the projective pose).
    inv = np.linalg.inv(part.matrix).astype(np.float32)
    xs = np.arange(part.x0, part.x0 + w, dtype=np.float32)
    ys = np.arange(part.y0, part.y0 + h, dtype=np.float32)
    den = inv[2, 0] * xs[None, :] + (inv[2, 1] * ys + inv[2, 2])[:, None]
    u = (inv[0, 0] * xs[None, :] + (inv[0, 1] * ys + inv[0, 2])[:, None]) / den
    v = (inv[1, 0] * xs[None, :] + (inv[1, 1] * ys + inv[1, 2])[:, None]) / den

    ca, sa = math.cos(part.angle), math.sin(part.angle)
    local = (ca * lx + sa * ly, -sa * lx + ca * ly, lz)
    shade = shade_part(part.geom, u, v, local, part.size)

    # A gentle gradient across the part, then a bevel: the slope of the blurred outline, lit from the light side.
    llx, lly = local[0] / norm, local[1] / norm
    shade *= 1.0 + rng.uniform(0.08, 0.22) * (u * llx + v * lly)
    bevel = max(0.8, 0.022 * part.size)
    soft = cv2.GaussianBlur(alpha, (0, 0), bevel)
    gx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3, scale=-0.3 * bevel * l2x)
    gy = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3, scale=-0.3 * bevel * l2y)
    # 0.3 * bevel = 2.5 * bevel (makes the steepest slope about 1) * 1/8 (Sobel gain).
    shade *= 1.0 + 0.4 * np.clip(gx + gy, -1.5, 1.5)

    # Brushed / rolled texture: a random 1-D profile along a random direction in the part's own frame.
    table = rng.standard_normal(258).astype(np.float32)
    table = np.convolve(table, np.array([0.25, 0.5, 0.25], np.float32), mode="same")
    table *= np.float32(part.geom.params.get("brush", 0.035))
    table += np.float32(1.0)
    beta = rng.uniform(0.0, math.pi)
    idx = ((u * math.cos(beta) + v * math.sin(beta) + 0.75) * (256 / 1.5)).astype(np.int32)
    np.clip(idx, 0, 257, out=idx)
    shade *= table[idx]

    if part.geom.lines:
        dark = np.zeros((h, w), np.uint8)
        bright = np.zeros((h, w), np.uint8)
        origin = np.array([part.x0, part.y0], np.float64)
        for line in part.geom.lines:
            pts = np.round((_project(part.matrix, line.points) - origin) * (1 << _FIX_BITS)).astype(np.int32)
            layer, value = (dark, 1.0 - line.gain) if line.gain < 1 else (bright, line.gain - 1.0)
            thickness = max(1, round(line.width * max(part.size, 60.0) / 90.0))
            cv2.polylines(layer, [pts], False, round(255 * value), thickness, cv2.LINE_AA, _FIX_BITS)
        shade *= 1.0 - dark.astype(np.float32) * np.float32(1.0 / 255.0)
        shade *= 1.0 + bright.astype(np.float32) * np.float32(1.0 / 255.0)

    base = _MATERIALS[rng.integers(len(_MATERIALS))] * np.float32(rng.uniform(0.9, 1.08))
    # A soft specular sheen on the side towards the light (weaker on bolts, which have their own).
    centre = _project(part.matrix, np.zeros((1, 2)))[0] + np.array([l2x, l2y]) * 0.15 * part.size
    spread = np.float32(-0.5 / (0.3 * part.size) ** 2)
    gain = rng.uniform(0.05, 0.15) if part.geom.kind == "bolt" else rng.uniform(0.1, 0.3)
    sheen_x = np.exp((xs[ccols] - np.float32(centre[0])) ** 2 * spread)
    sheen_y = np.exp((ys[crows] - np.float32(centre[1])) ** 2 * spread) * np.float32(255.0 * gain)

    sheen = sheen_y[:, None] * sheen_x[None, :]
    shade = shade[crows, ccols]
    if field_ is not None:
        # Colour of the in-frame crop, lit by the scene's uneven light like the belt under it.
        lit = field_.at(xs[ccols], ys[crows])
        sheen *= lit
        shade = shade * lit
    return cv2.merge([shade * base[0] + sheen, shade * base[1] + sheen, shade * base[2] + sheen])


def _draw_part(canvas: np.ndarray, part: _Part, rng: np.random.Generator, lighting: _Lighting) -> None:
    """Darken the belt (and parts below) with ``part``'s shadow, then blend the shaded part over it."""
    height, width = canvas.shape[:2]
    h, w = part.alpha.shape
    alpha = part.alpha.astype(np.float32) * np.float32(1.0 / 255.0)

    # Drop shadow: the coverage shifted away from the light and blurred, multiplied into what is already drawn.
    shadow, pad = _drop_shadow(alpha, part, lighting)
    sx0, sy0 = part.x0 - pad, part.y0 - pad
    ix0, iy0 = max(sx0, 0), max(sy0, 0)
    ix1, iy1 = min(sx0 + w + 2 * pad, width), min(sy0 + h + 2 * pad, height)
    if ix1 > ix0 and iy1 > iy0:
        keep = (
            np.float32(1.0)
            - np.float32(lighting.shadow_strength) * shadow[iy0 - sy0 : iy1 - sy0, ix0 - sx0 : ix1 - sx0]
        )
        canvas[iy0:iy1, ix0:ix1] = cv2.multiply(canvas[iy0:iy1, ix0:ix1], cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR))

    clip = part.clip(width, height)
    if clip is None:
        return
    rows, cols, crows, ccols = clip
    colour = _part_colour(part, alpha, rng, lighting, crows, ccols, lighting.field)
    a = np.ascontiguousarray(alpha[crows, ccols])
    canvas[rows, cols] = cv2.blendLinear(colour, canvas[rows, cols], a, np.float32(1.0) - a)


def _draw_blur(
    rng: np.random.Generator, max_sigma: float, angle: float | None = None
) -> tuple[float, np.ndarray | None]:
    """A random blur of up to ``max_sigma``: ``(sigma, kernel)``; a motion-blur kernel (30% of draws) or None for
    Gaussian blur; sigma below 0.3 means no blur. The motion direction is random unless ``angle`` (radians) is
    given."""
    sigma = rng.uniform(0.0, max_sigma)
    motion = rng.random() < 0.3
    if sigma < 0.3 or not motion:
        return sigma, None
    # Motion blur: a normalised anti-aliased line kernel about 2.4 sigma long.
    n = 2 * math.ceil(sigma * 1.2) + 1
    kernel = np.zeros((n, n), np.float32)
    ang = rng.uniform(0.0, math.pi) if angle is None else angle
    c, d = n // 2, sigma * 1.2
    p0 = (round((c - d * math.cos(ang)) * 16), round((c - d * math.sin(ang)) * 16))
    p1 = (round((c + d * math.cos(ang)) * 16), round((c + d * math.sin(ang)) * 16))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, 4)
    kernel /= kernel.sum()
    return sigma, kernel


def _apply_blur(image: np.ndarray, sigma: float, kernel: np.ndarray | None) -> None:
    """Blur ``image`` in place as drawn by ``_draw_blur``."""
    if sigma < 0.3:
        return
    if kernel is not None:
        cv2.filter2D(image, -1, kernel, dst=image, borderType=cv2.BORDER_REFLECT)
    else:
        cv2.GaussianBlur(image, (0, 0), sigma, dst=image, borderType=cv2.BORDER_REFLECT)


def _camera(rng: np.random.Generator, canvas: np.ndarray, config: SceneConfig) -> np.ndarray:
    """Blur and sensor noise, in place where possible; returns the uint8 image."""
    _apply_blur(canvas, *_draw_blur(rng, config.blur))
    std = rng.uniform(0.0, config.noise)
    if std < 0.05:
        return cv2.convertScaleAbs(canvas)  # values are >= 0 here, so "abs" is only the rounding, saturating cast
    # cv2.add to 8-bit output rounds and saturates in one pass, without another float frame.
    return cv2.add(canvas, _fast_normal(rng, canvas.shape, std, np.int16), dtype=cv2.CV_8U)


def _pick_kind(rng: np.random.Generator, defect_rate: float) -> str:
    kind = BASE_KINDS[int(rng.choice(len(BASE_KINDS), p=BASE_WEIGHTS))]
    if kind in DEFECT_OF and rng.random() < defect_rate:
        kind = DEFECT_OF[kind]
    return kind


def render_scene(seed: int | np.random.SeedSequence, config: SceneConfig | None = None) -> Scene:
    """Render one scene. The same seed and config give byte-identical results.

    Args:
        seed: a non-negative int or a SeedSequence; all randomness comes from a Generator seeded with it.
        config: scene settings; default ``SceneConfig()``.

    Raises:
        ValueError: for an invalid config (see ``SceneConfig.validate``).
    """
    config = SceneConfig() if config is None else config
    config.validate()
    rng = np.random.default_rng(seed)
    width, height = config.width, config.height

    persp = _perspective(rng, width, height, config.perspective)
    placer = _Placer(config, persp)
    count = int(rng.integers(config.min_parts, config.max_parts + 1))
    kinds: list[str] = []
    for _ in range(count):
        kind = _pick_kind(rng, config.defect_rate)
        size = rng.uniform(*config.part_size)
        if placer.try_place(make_part(kind, rng), size, rng):
            kinds.append(kind)

    # Light from a random azimuth, 35-60 degrees off vertical; diffuse enough that shadows are short and soft.
    azimuth, tilt = rng.uniform(0.0, 2 * math.pi), rng.uniform(0.6, 1.05)
    direction = (math.cos(azimuth) * math.sin(tilt), math.sin(azimuth) * math.sin(tilt), math.cos(tilt))
    field_ = _Illumination.random(rng, width, height)
    lighting = _Lighting(direction, rng.uniform(0.12, 0.35), rng.uniform(0.25, 0.55), field_)

    canvas = _belt(rng, width, height, field_)
    for part in placer.parts:
        _draw_part(canvas, part, rng, lighting)
    image = _camera(rng, canvas, config)

    n = len(placer.parts)
    boxes = np.zeros((n, 4), np.float32)
    for i, part in enumerate(placer.parts):
        rows, cols, _, _ = part.clip(width, height)
        ys, xs = np.nonzero(placer.imap[rows, cols] == i + 1)
        boxes[i] = (cols.start + xs.min(), rows.start + ys.min(), cols.start + xs.max() + 1, rows.start + ys.max() + 1)
    centers = np.array([_project(p.matrix, np.zeros((1, 2)))[0] for p in placer.parts], np.float32).reshape(n, 2)
    return Scene(
        image=image,
        instance_map=placer.imap,
        classes=np.array([CLASSES.index(k) for k in kinds], np.int64),
        boxes=boxes,
        centers=centers,
        full_areas=np.array([p.full_area for p in placer.parts], np.int64),
    )
