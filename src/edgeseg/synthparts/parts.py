"""Part geometry and shading for the synthetic conveyor scenes.

Every part is described in part-local units: the part is centred on the origin and its largest outer
dimension is 1, so a scene only has to scale, rotate and place it. Outlines are polygons (circles are
dense polygons), which keeps rasterisation exact under any projective transform: the scene maps the
vertices and fills the result, so masks never drift from the drawn edges.

Shading is analytic in the same local coordinates (``shade_part``), so surface detail such as bolt
threads or lathe marks follows the part through rotation and perspective for free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CLASSES: tuple[str, ...] = ("washer", "hex_nut", "bolt", "bracket", "cracked_washer", "bracket_missing_hole")
"""Class names; a class index is a position in this tuple (COCO category id = index + 1)."""

BASE_KINDS: tuple[str, ...] = ("washer", "hex_nut", "bolt", "bracket")
"""Kinds a scene draws before deciding on a defect."""

BASE_WEIGHTS: tuple[float, ...] = (0.33, 0.17, 0.17, 0.33)
"""Draw probability of each base kind. Washers and brackets are favoured because a share of them turns into
their defect class: at ``defect_rate=0.25`` each defect class is about 8% of the parts and no class exceeds 25%."""

DEFECT_OF: dict[str, str] = {"washer": "cracked_washer", "bracket": "bracket_missing_hole"}
"""The defect class each base kind can turn into."""

_CIRCLE_VERTICES = 72  # chord error stays below 0.1 px even at 120 px parts seen at 2x supersampling


@dataclass(frozen=True)
class DetailLine:
    """A surface mark (crack, scratch) drawn over the part's shading.

    Attributes:
        points: (K, 2) polyline in part-local units.
        width: stroke width in image pixels.
        gain: multiplies the shading under the stroke: below 1 darkens (cracks), above 1 brightens (scratches).
    """

    points: np.ndarray
    width: float
    gain: float


@dataclass(frozen=True)
class PartGeometry:
    """One part instance in part-local units (centred, largest outer dimension 1).

    Attributes:
        kind: the class name, one of ``CLASSES``.
        outer: outer contours, each an (K, 2) float64 polygon.
        holes: contours cut out of the outer ones (background in the mask).
        lines: surface marks drawn on top of the shading.
        keypoints: (K, 3) ``x, y, radius`` of the regions that tell this class apart from its look-alike
            (a bracket's hole sites, a cracked washer's gap); a scene keeps them unoccluded and in frame
            so that the label stays decidable from the pixels.
        height: thickness relative to the part's size; sets the drop-shadow length.
        params: shape parameters the shading needs (radii, widths, thread pitch ...).
    """

    kind: str
    outer: tuple[np.ndarray, ...]
    holes: tuple[np.ndarray, ...] = ()
    lines: tuple[DetailLine, ...] = ()
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    height: float = 0.05
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Plain floats keep the shading arithmetic in float32: NumPy scalars would promote the arrays.
        object.__setattr__(self, "params", {k: float(v) for k, v in self.params.items()})
        object.__setattr__(self, "height", float(self.height))


def _circle(cx: float, cy: float, r: float, n: int = _CIRCLE_VERTICES) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _arc(r: float, a0: float, a1: float, step: float = 2.0 * np.pi / _CIRCLE_VERTICES) -> np.ndarray:
    n = max(2, int(np.ceil(abs(a1 - a0) / step)) + 1)
    t = np.linspace(a0, a1, n)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _round_corners(points: np.ndarray, radii: np.ndarray, n: int = 6) -> np.ndarray:
    """Replace each vertex by a quadratic Bézier fillet reaching ``radii[k]`` along both of its edges."""
    out = []
    k = len(points)
    for i in range(k):
        p, r = points[i], radii[i]
        if r <= 0:
            out.append(p[None])
            continue
        prev, nxt = points[i - 1], points[(i + 1) % k]
        a = p + (prev - p) / np.linalg.norm(prev - p) * r
        b = p + (nxt - p) / np.linalg.norm(nxt - p) * r
        t = np.linspace(0.0, 1.0, n)[:, None]
        out.append((1 - t) ** 2 * a + 2 * (1 - t) * t * p + t**2 * b)
    return np.concatenate(out)


def _jagged(p0: np.ndarray, p1: np.ndarray, rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    """A zig-zag polyline from p0 to p1 (both ends exact) with sideways jitter up to ``amp``."""
    t = np.linspace(0.0, 1.0, n + 2)[:, None]
    pts = p0 + (p1 - p0) * t
    normal = np.array([-(p1 - p0)[1], (p1 - p0)[0]]) / max(float(np.linalg.norm(p1 - p0)), 1e-9)
    offs = rng.uniform(-amp, amp, n + 2)
    offs[0] = offs[-1] = 0.0
    return pts + offs[:, None] * normal


def _scratches(rng: np.random.Generator, extent: float = 0.4) -> tuple[DetailLine, ...]:
    lines = []
    for _ in range(int(rng.integers(0, 4))):
        start = rng.uniform(-extent, extent, 2)
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(0.08, 0.35)
        end = start + length * np.array([np.cos(ang), np.sin(ang)])
        lines.append(DetailLine(np.stack([start, end]), 1.0, float(rng.choice([0.86, 1.12]))))
    return tuple(lines)


def make_washer(rng: np.random.Generator, cracked: bool = False) -> PartGeometry:
    """A flat washer (annulus); ``cracked`` splits the ring with a jagged radial gap and adds a hairline crack."""
    outer_r = 0.5
    inner_r = outer_r * rng.uniform(0.40, 0.50)
    params = {"outer_r": outer_r, "inner_r": inner_r}
    lines = _scratches(rng, 0.3)
    if not cracked:
        return PartGeometry(
            "washer", (_circle(0, 0, outer_r),), (_circle(0, 0, inner_r),), lines, height=0.04, params=params
        )

    # The gap is a parallel-sided slot (as in a snapped split washer): its width must survive 0.75x scaling of
    # the smallest parts, so it is a sizeable fraction of the ring rather than a hairline.
    alpha = rng.uniform(0, 2 * np.pi)
    gap = rng.uniform(0.13, 0.19)
    d_out, d_in = np.arcsin(gap / 2 / outer_r), np.arcsin(gap / 2 / inner_r)
    rot = np.array([[np.cos(alpha), -np.sin(alpha)], [np.sin(alpha), np.cos(alpha)]])
    outer_arc = _arc(outer_r, d_out, 2 * np.pi - d_out)
    inner_arc = _arc(inner_r, 2 * np.pi - d_in, d_in)
    amp = 0.012
    side_a = _jagged(outer_arc[-1], inner_arc[0], rng, 3, amp)[1:-1]
    side_b = _jagged(inner_arc[-1], outer_arc[0], rng, 3, amp)[1:-1]
    ring = np.concatenate([outer_arc, side_a, inner_arc, side_b]) @ rot.T
    mid_r = 0.5 * (outer_r + inner_r)
    gap_c = mid_r * np.array([np.cos(alpha), np.sin(alpha)])
    # A second, still-closed crack elsewhere on the ring: the kind of flaw that precedes the split.
    beta = alpha + rng.uniform(0.6, 1.4) * np.pi
    depth = rng.uniform(0.55, 0.85) * (outer_r - inner_r)
    c0 = outer_r * 1.02 * np.array([np.cos(beta), np.sin(beta)])
    c1 = (outer_r - depth) * np.array([np.cos(beta + 0.05), np.sin(beta + 0.05)])
    crack = DetailLine(_jagged(c0, c1, rng, 4, 0.012), 1.2, 0.35)
    keypoints = np.array([[gap_c[0], gap_c[1], max(gap, outer_r - inner_r) * 0.8]])
    return PartGeometry("cracked_washer", (ring,), (), (crack, *lines), keypoints=keypoints, height=0.04, params=params)


def make_hex_nut(rng: np.random.Generator) -> PartGeometry:
    """A hex nut seen from above: hexagon (circumradius 0.5) with a round hole and a chamfered top face."""
    circ_r = 0.5
    phase = rng.uniform(0, np.pi / 3)
    t = phase + np.arange(6) * np.pi / 3
    hexagon = np.stack([circ_r * np.cos(t), circ_r * np.sin(t)], axis=1)
    hole_r = circ_r * rng.uniform(0.45, 0.55)
    params = {"circ_r": circ_r, "hole_r": hole_r, "chamfer_r": circ_r * np.cos(np.pi / 6) * rng.uniform(0.9, 0.97)}
    return PartGeometry(
        "hex_nut", (hexagon,), (_circle(0, 0, hole_r),), _scratches(rng, 0.3), height=0.35, params=params
    )


def make_bolt(rng: np.random.Generator) -> PartGeometry:
    """A hex bolt lying on its side: head (a hex prism seen side-on) plus a threaded shaft along +x.

    The total length is 1 (x from -0.5 to 0.5); the shaft is 3 to 5 times longer than wide.
    """
    head_len = rng.uniform(0.11, 0.17)
    shaft_len = 1.0 - head_len
    shaft_hw = shaft_len / rng.uniform(3.0, 5.0) / 2
    head_hw = shaft_hw * rng.uniform(1.45, 1.8)
    x_head = -0.5 + head_len
    thread_start = x_head + shaft_len * rng.choice([0.0, rng.uniform(0.25, 0.5)])
    tip = 0.35 * shaft_hw
    chamfer = 0.25 * head_len
    # Threads notch the silhouette slightly, which is how a real threaded edge looks at high resolution.
    pitch = 0.32 * shaft_hw
    n_teeth = max(1, int((0.5 - tip - thread_start) / pitch))
    xs = thread_start + pitch * np.arange(n_teeth + 1)
    notch = 0.06 * shaft_hw
    top_teeth = np.stack([xs, -shaft_hw + notch * (np.arange(n_teeth + 1) % 2)], axis=1)
    bottom_teeth = np.stack([xs[::-1], shaft_hw - notch * (np.arange(n_teeth + 1)[::-1] % 2)], axis=1)
    outline = np.concatenate(
        [
            [[-0.5 + chamfer, -head_hw], [x_head, -head_hw], [x_head, -shaft_hw]],
            top_teeth,
            [[0.5 - tip, -shaft_hw], [0.5, -shaft_hw + tip], [0.5, shaft_hw - tip], [0.5 - tip, shaft_hw]],
            bottom_teeth,
            [[x_head, shaft_hw], [x_head, head_hw], [-0.5 + chamfer, head_hw]],
            [[-0.5, head_hw - chamfer], [-0.5, -head_hw + chamfer]],
        ]
    )
    # Drop duplicate consecutive vertices (teeth can coincide with the fixed corners).
    keep = np.ones(len(outline), bool)
    keep[1:] = np.any(np.abs(np.diff(outline, axis=0)) > 1e-9, axis=1)
    params = {
        "x_head": x_head,
        "head_hw": head_hw,
        "shaft_hw": shaft_hw,
        "thread_start": thread_start,
        "pitch": pitch,
        "flat_top": float(rng.random() < 0.5),
    }
    return PartGeometry("bolt", (outline[keep],), (), _scratches(rng, 0.3), height=2 * head_hw, params=params)


def make_bracket(rng: np.random.Generator, missing_hole: bool = False) -> PartGeometry:
    """A flat L-shaped (or straight) bracket with two round holes; ``missing_hole`` leaves one site solid."""
    if rng.random() < 0.7:
        a, b = 1.0, rng.uniform(0.6, 1.0)
        t = rng.uniform(0.28, 0.38)
        poly = np.array([[0, 0], [a, 0], [a, t], [t, t], [t, b], [0, b]], dtype=np.float64)
        end_r = rng.uniform(0.1, 0.5) * t
        radii = np.array([0.2 * t, end_r, end_r, 0.0, end_r, end_r])
        sites = np.array([[a - t / 2, t / 2], [t / 2, b - t / 2]])
    else:
        a, t = 1.0, rng.uniform(0.3, 0.42)
        poly = np.array([[0, 0], [a, 0], [a, t], [0, t]], dtype=np.float64)
        radii = np.full(4, rng.uniform(0.1, 0.5) * t)
        sites = np.array([[t / 2, t / 2], [a - t / 2, t / 2]])
        b = t
    outline = _round_corners(poly, radii)
    centre = np.array([a / 2, b / 2])
    outline -= centre
    sites = sites - centre
    hole_r = t * rng.uniform(0.2, 0.28)
    kept = sites
    kind = "bracket"
    if missing_hole:
        kept = np.delete(sites, int(rng.integers(0, 2)), axis=0)
        kind = "bracket_missing_hole"
    holes = tuple(_circle(x, y, hole_r, 40) for x, y in kept)
    keypoints = np.concatenate([sites, np.full((2, 1), hole_r * 1.4)], axis=1)
    params = {"hole_r": hole_r, "brush": 0.06}
    for k, (x, y) in enumerate(kept):
        params[f"hole{k}_x"], params[f"hole{k}_y"] = float(x), float(y)
    return PartGeometry(kind, (outline,), holes, _scratches(rng), keypoints=keypoints, height=0.05, params=params)


def make_part(kind: str, rng: np.random.Generator) -> PartGeometry:
    """Random geometry of one part of class ``kind`` (one of ``CLASSES``)."""
    if kind == "washer":
        return make_washer(rng)
    if kind == "cracked_washer":
        return make_washer(rng, cracked=True)
    if kind == "hex_nut":
        return make_hex_nut(rng)
    if kind == "bolt":
        return make_bolt(rng)
    if kind == "bracket":
        return make_bracket(rng)
    if kind == "bracket_missing_hole":
        return make_bracket(rng, missing_hole=True)
    raise ValueError(f"unknown part kind {kind!r}: use one of {', '.join(CLASSES)}")


def _lambert(
    nx: np.ndarray | float, ny: np.ndarray | float, nz: np.ndarray | float, light: tuple[float, ...]
) -> np.ndarray:
    """Diffuse plus a Blinn-Phong highlight for a camera looking straight down; ``light`` is a unit 3-vector."""
    lx, ly, lz = light
    norm = math.sqrt(lx * lx + ly * ly + (lz + 1.0) ** 2)
    hx, hy, hz = lx / norm, ly / norm, (lz + 1.0) / norm
    diffuse = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
    spec = np.maximum(nx * hx + ny * hy + nz * hz, 0.0) ** 24
    return 0.3 + 0.75 * diffuse + 0.55 * spec


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def shade_part(
    geom: PartGeometry, u: np.ndarray, v: np.ndarray, light: Sequence[float], px_per_unit: float
) -> np.ndarray:
    """Multiplicative shading of ``geom`` at part-local coordinates ``u, v`` (float32 arrays of equal shape).

    Args:
        geom: the part.
        u, v: part-local coordinates of each pixel to shade.
        light: unit 3-vector towards the light in the part's frame (x, y in the part plane, z up to the camera).
        px_per_unit: image pixels per part-local unit, to keep fine texture at a visible, alias-free period.

    Returns:
        float32 array like ``u``: about 1 on a flat face lit from above, below 1 in shade, above 1 on highlights.
    """
    p = geom.params
    light = tuple(float(c) for c in light)  # plain floats keep the arithmetic in float32
    flat = float(_lambert(0.0, 0.0, 1.0, light))
    if geom.kind in ("washer", "cracked_washer", "hex_nut"):
        r = np.sqrt(u * u + v * v) + 1e-6
        # Lathe marks: concentric rings a few pixels apart, faint enough to read as texture.
        period = max(3.0 / px_per_unit, 0.02)
        out = flat * (1.0 + 0.03 * np.cos(r * (2 * np.pi / period)))
        if geom.kind != "hex_nut":
            # A washer is slightly dished: its face tilts a little towards the centre.
            tilt = 0.12 * (u * light[0] + v * light[1]) / r
            return (out - tilt).astype(np.float32)
        # Nut: the chamfer cone beyond the inscribed circle and the countersink around the hole face
        # outwards and inwards by ~30 degrees, so they catch the light on opposite sides.
        s30, c30 = 0.5, 0.866
        radial = (u * light[0] + v * light[1]) / r
        outward = 0.3 + 0.75 * np.maximum(s30 * radial + c30 * light[2], 0)
        inward = 0.3 + 0.75 * np.maximum(-s30 * radial + c30 * light[2], 0)
        w_out = _smoothstep((r - p["chamfer_r"]) * px_per_unit + 0.5)
        w_in = _smoothstep((p["hole_r"] * 1.25 - r) * px_per_unit + 0.5)
        out = out * (1 - w_out - w_in) + outward * w_out + inward * w_in
        return out.astype(np.float32)
    if geom.kind == "bolt":
        x_head = p["x_head"]
        # Shaft: a cylinder along x; the surface normal turns with v.
        vn = np.clip(v / p["shaft_hw"], -1.0, 1.0)
        shaft = _lambert(0.0, vn, np.sqrt(1.0 - vn * vn), light)
        pitch = max(p["pitch"], 2.5 / px_per_unit)
        phase = (u + 0.12 * v) * (2 * np.pi / pitch)
        thread = 1.0 - 0.45 * (0.5 + 0.5 * np.cos(phase)) ** 3
        shaft = np.where(u > p["thread_start"], shaft * thread, shaft)
        # Head: a hex prism lying on a face (one flat on top, two slanted) or on an edge (two slanted faces).
        vh = v / p["head_hw"]
        if p["flat_top"] > 0.5:
            ang = np.where(np.abs(vh) < 0.5, 0.0, np.sign(vh) * (np.pi / 3))
        else:
            ang = np.sign(vh) * (np.pi / 6)
        head = _lambert(0.0, np.sin(ang), np.cos(ang), light)
        return np.where(u < x_head, head, shaft).astype(np.float32)
    # Bracket: a flat plate with a countersink ring around each hole.
    out = np.full(u.shape, flat, np.float32)
    hole_r = p.get("hole_r", 0.0)
    for k in range(2):
        if f"hole{k}_x" not in p:
            continue
        du, dv = u - p[f"hole{k}_x"], v - p[f"hole{k}_y"]
        d = np.sqrt(du * du + dv * dv) + 1e-6
        ring = _smoothstep((hole_r * 1.35 - d) * px_per_unit + 0.5)
        sink = 0.3 + 0.75 * np.maximum(-0.5 * (du * light[0] + dv * light[1]) / d + 0.866 * light[2], 0)
        out = out * (1 - ring) + sink * ring
    return out.astype(np.float32)
