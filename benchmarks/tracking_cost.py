"""Tracking cost: time per frame of the tracker at 10, 50, 100 and 200 detections.

A synthetic scene of N parts (ellipse masks in crops of about 40 x 40 pixels) moves over a 1920 x 1080
frame with realistic frame-to-frame motion (2-6 px a frame plus 1 px of jitter, bouncing off the edges,
so parts pass close to and across each other); each frame is a ``Result`` with bit-packed masks, made
before timing. Timed, per frame, after a warm-up: ``edgeseg.track.Tracker.update(result)`` (what users
call: Result in, Result with track ids out) and the core alone (``edgeseg._core.Tracker.update`` on the
same arrays), with box and with mask association. The target (issue 9) is <= 0.3 ms per frame at 100
detections on the 2-core development machine.

    python benchmarks/tracking_cost.py                                   # about 20 s
    python benchmarks/tracking_cost.py --json benchmarks/results/tracking_cost.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg import _core
from edgeseg.masks import InstanceMasks
from edgeseg.result import Result
from edgeseg.track import Tracker

from common import git_state, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
H, W = 1080, 1920
TARGET_MS = 0.3


def scene(n: int, frames: int, seed: int) -> list[Result]:
    """``frames`` Results of n moving parts with masks."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(32, 48, size=(n, 2))
    pos = rng.uniform([0, 0], [W - 48, H - 48], size=(n, 2))
    speed = rng.uniform(2, 6, size=n)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    vel = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
    scores = rng.uniform(0.3, 0.98, size=n).astype(np.float32)
    classes = rng.integers(0, 4, size=n).astype(np.int32)
    out = []
    for _ in range(frames):
        pos += vel + rng.normal(0, 1, size=(n, 2))
        for axis, limit in ((0, W), (1, H)):
            hit = (pos[:, axis] < 0) | (pos[:, axis] + size[:, axis] > limit)
            vel[hit, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], 0, limit - size[:, axis])
        boxes = np.concatenate([pos, pos + size], 1).astype(np.float32)
        rects = np.concatenate([np.floor(pos), np.ceil(pos + size) - np.floor(pos)], 1).astype(np.int32)
        crops = []
        for (x0, y0, w, h), (bx, by), (sw, sh) in zip(rects.tolist(), pos.tolist(), size.tolist()):
            yy, xx = np.mgrid[0:h, 0:w]
            cx, cy = bx - x0 + sw / 2, by - y0 + sh / 2
            crops.append(((xx + 0.5 - cx) / (sw / 2)) ** 2 + ((yy + 0.5 - cy) / (sh / 2)) ** 2 <= 1)
        jitter = np.clip(scores + rng.normal(0, 0.05, size=n), 0, 1).astype(np.float32)
        masks = InstanceMasks.from_crops(rects, crops, (H, W))
        out.append(Result(boxes, jitter, classes.copy(), ("a", "b", "c", "d"), masks, (H, W)))
    return out


def stats(times: list[float]) -> dict[str, float]:
    ms = np.array(times) * 1e3
    return {"mean_ms": round(float(ms.mean()), 4), "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4)}  # fmt: skip


def time_python(results: list[Result], association: str, warmup: int) -> tuple[dict[str, float], int]:
    tracker = Tracker(association=association)
    times = []
    for k, r in enumerate(results):
        t = time.perf_counter()
        tracker.update(r)
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return stats(times), len(tracker.tracks)


def time_core(results: list[Result], association: str, warmup: int) -> dict[str, float]:
    tracker = _core.Tracker(use_masks=association == "mask")
    times = []
    for k, r in enumerate(results):
        m = r.masks
        args = (r.boxes, r.scores, r.class_ids, m.rects, m.offsets, m.data)
        t = time.perf_counter()
        tracker.update(*args)
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return stats(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--frames", type=int, default=600, help="frames per run (the first --warmup are not timed)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for n in args.sizes:
        results = scene(n, args.frames, args.seed + n)
        for association in ("box", "mask"):
            py, tracks = time_python(results, association, args.warmup)
            core = time_core(results, association, args.warmup)
            rows.append({"detections": n, "association": association, "python": py, "core": core,
                         "confirmed_tracks_at_end": tracks})  # fmt: skip
            print(f"n={n:4d} {association:4s}  Tracker.update mean {py['mean_ms']:.3f} p50 {py['p50_ms']:.3f} "
                  f"p99 {py['p99_ms']:.3f} ms | core mean {core['mean_ms']:.3f} p50 {core['p50_ms']:.3f} "
                  f"p99 {core['p99_ms']:.3f} ms | {tracks} tracks")  # fmt: skip
    at100 = [r for r in rows if r["detections"] == 100]
    result = {
        "benchmark": "tracking cost per frame",
        "scene": f"{W}x{H} frame, ~40x40 ellipse masks, 2-6 px/frame + 1 px jitter, scores 0.3-0.98",
        "frames": args.frames,
        "warmup": args.warmup,
        "target_ms_at_100": TARGET_MS,
        "meets_target": bool(at100) and all(r["python"]["mean_ms"] <= TARGET_MS for r in at100),
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "versions": versions(("edgeseg", "numpy", "opencv-python-headless")),
        "git": git_state(ROOT),
        "command": " ".join(["python", *sys.argv]),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
