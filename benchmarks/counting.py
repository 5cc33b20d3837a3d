"""Counting: per-class line-crossing counts of ``model.stream()`` on generated belt sequences vs the truth.

Protocol (issue 9's counting target: exact per-class counts on >= 95% of (sequence, class) pairs):

1. Render ``--sequences`` belt sequences (seeds ``--first-seed`` onwards, default 2000-2019, default
   ``BeltConfig``, ``--frames`` frames each) with ``edgeseg.synthparts.write_belt_video`` into a temporary
   folder: an mp4 (mp4v) plus its MOTChallenge ground truth and ``.counts.json`` (the counting line and the
   true per-class, per-direction crossings).
2. Run the bundled model on the video file exactly as a user would: ``model.stream(path, counters={"line":
   LineCounter(line, names=model.names)}, keep_images=False)`` with every default (conf 0.25, tracking on with
   the default ``TrackerConfig``), the line being the one ``write_belt_video`` reports.
3. Compare the counter's final per-class, per-direction counts with the true ones. The (sequence, class)
   pairs are the classes with a nonzero true or a nonzero found count in that sequence; a pair is exact when
   both directions agree. Report the fraction exact, every miss, and the stream's FPS and latency
   (``stream.summary()``; frames are read as fast as the pipeline takes them, none dropped).
4. Diagnose each miss: the ground truth's own crossing events (a ``LineCounter`` fed the true ids and boxes,
   which reproduces the true counts) and the stream's crossing events (the same counter replayed on the
   stream's Results) are matched through per-frame box IoU (>= 0.5, greedy) to the true parts. A true
   crossing without a counted track is "missed" (with why: the part was not detected on one side of the
   line, or its track id changed at the line, or the track's class was wrong); a counted crossing of a part
   already counted is a "double count" (an id switch near the line); a counted crossing matching no part is
   a "false positive"; a right part counted under another class is a "class confusion".

Command that produced ``benchmarks/results/counting.json`` (about 5 minutes on the 2-core machine,
rendering included):

    .venv/bin/python benchmarks/counting.py --json benchmarks/results/counting.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import edgeseg
from edgeseg.counting import LineCounter
from edgeseg.synthparts import BeltConfig, write_belt_video

from common import box_iou, git_state, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.95


def load_gt(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Frame (0-based) -> (ids, classes, xyxy boxes) from a belt MOTChallenge ground-truth file."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        boxes = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], 1)
        out[int(f) - 1] = (r[:, 1].astype(np.int64), r[:, 7].astype(np.int64) - 1, boxes)
    return out


def crossing_events(frames: list[Any], line: tuple[float, ...], names: tuple[str, ...]) -> list[tuple]:
    """(frame, track id, class name, direction) of every crossing a LineCounter counts on these frames."""
    counter = LineCounter(line, names=names)
    events = []
    for k, frame in enumerate(frames):
        crossed = counter.update(frame)
        for direction, items in crossed.items():
            events.extend((k, tid, name, direction) for tid, name in items)
    return events


def match(gt: tuple[np.ndarray, np.ndarray, np.ndarray], boxes: np.ndarray) -> dict[int, int]:
    """Greedy one-to-one matching of predicted boxes to true parts at IoU >= 0.5: prediction index -> true id."""
    ids, _, gt_boxes = gt
    if not len(ids) or not len(boxes):
        return {}
    iou = box_iou(boxes, gt_boxes)
    out: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < 0.5:
            break
        if int(i) in out or int(j) in used:
            continue
        out[int(i)] = int(ids[j])
        used.add(int(j))
    return out


def diagnose(results: list[Any], gt: dict, line: tuple[float, ...], names: tuple[str, ...]) -> dict[str, Any]:
    """Crossing events of the ground truth and of the stream, paired through the true part ids."""
    n = len(results)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)))
    gt_frames = []
    for k in range(n):
        ids, classes, boxes = gt.get(k, empty)
        gt_frames.append(
            SimpleNamespace(boxes=boxes, class_ids=classes, names=names, track_ids=ids, track_classes=None)
        )
    true_events = crossing_events(gt_frames, line, names)
    found_events = crossing_events(results, line, names)
    # Per frame: track id -> true part id, and true part id -> track id (tracked instances only).
    track_to_part: list[dict[int, int]] = []
    part_to_track: list[dict[int, int]] = []
    for k, r in enumerate(results):
        m = match(gt.get(k, empty), np.asarray(r.boxes, np.float64))
        tids = np.asarray(r.track_ids)
        t2p = {int(tids[i]): pid for i, pid in m.items() if tids[i] > 0}
        track_to_part.append(t2p)
        part_to_track.append({p: t for t, p in t2p.items()})
    part_class = {}
    for ids, classes, _ in gt.values():
        part_class.update(zip(ids.tolist(), classes.tolist()))

    def part_of(frame: int, tid: int) -> int | None:
        for k in (frame, frame - 1, frame + 1, frame - 2, frame + 2):
            if 0 <= k < n and tid in track_to_part[k]:
                return track_to_part[k][tid]
        return None

    counted: dict[tuple[int, str], list[tuple]] = defaultdict(list)  # (part, direction) -> found events
    problems = []
    for frame, tid, name, direction in found_events:
        pid = part_of(frame, tid)
        if pid is None:
            problems.append(
                {"kind": "false positive", "frame": frame, "track": tid, "class": name, "direction": direction}
            )
            continue
        counted[(pid, direction)].append((frame, tid, name))
    for frame, pid, name, direction in true_events:
        hits = counted.pop((pid, direction), [])
        if not hits:
            window = range(max(0, frame - 15), min(n, frame + 15))
            before = {part_to_track[k].get(pid) for k in window if k < frame} - {None}
            after = {part_to_track[k].get(pid) for k in window if k >= frame} - {None}
            if not before or not after:
                why = f"part not tracked on the {'left' if not before else 'right'} of the line (missed detections)"
            elif not before & after:
                why = f"track id changed at the line ({sorted(before)} -> {sorted(after)})"
            else:
                why = "tracked across the line but not counted"
            problems.append(
                {"kind": "missed", "frame": frame, "part": pid, "class": name, "direction": direction, "why": why}
            )
            continue
        first = hits[0]
        if first[2] != name:
            problems.append(
                {
                    "kind": "class confusion",
                    "frame": first[0],
                    "part": pid,
                    "track": first[1],
                    "class": name,
                    "counted_as": first[2],
                    "direction": direction,
                }
            )
        for extra in hits[1:]:
            problems.append(
                {
                    "kind": "double count",
                    "frame": extra[0],
                    "part": pid,
                    "track": extra[1],
                    "class": extra[2],
                    "direction": direction,
                    "first_track": first[1],
                }
            )
    for (pid, direction), hits in counted.items():  # counted, but the part never crossed in the ground truth
        for frame, tid, name in hits:
            problems.append(
                {
                    "kind": "spurious crossing",
                    "frame": frame,
                    "part": pid,
                    "track": tid,
                    "class": name,
                    "true_class": names[part_class[pid]] if pid in part_class else None,
                    "direction": direction,
                }
            )
    return {"true_events": len(true_events), "found_events": len(found_events), "problems": problems}


def run_sequence(model: Any, seed: int, frames: int, folder: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    video = write_belt_video(folder / f"belt-{seed}.mp4", frames, seed, BeltConfig())
    render_s = time.perf_counter() - t0
    names = tuple(model.names)
    counter = LineCounter(video.line, names=names)
    results = []
    t1 = time.perf_counter()
    with model.stream(str(video.path), counters={"line": counter}, keep_images=False) as stream:
        for r in stream:
            results.append(r)
        summary = stream.summary()
    stream_s = time.perf_counter() - t1
    found = summary["counts"]["line"]["counts"]
    true = video.counts
    pairs = []
    for name in names:
        t = true.get(name, {"in": 0, "out": 0})
        f = found.get(name, {"in": 0, "out": 0})
        if not (t["in"] or t["out"] or f["in"] or f["out"]):
            continue
        pairs.append({"class": name, "true": t, "found": f, "exact": t == f})
    diag = diagnose(results, load_gt(video.mot_path), video.line, names)
    for path in (video.path, video.mot_path, video.coco_path, video.counts_path):
        path.unlink()
    return {
        "seed": seed,
        "frames": video.frames,
        "line": list(video.line),
        "pairs": pairs,
        "true_total": {d: sum(c[d] for c in true.values()) for d in ("in", "out")},
        "found_total": summary["counts"]["line"]["total"],
        "stream": {
            k: summary[k]
            for k in ("frames", "processed", "dropped", "skipped", "fps", "latency_ms", "stage_ms", "tracks")
        },
        "diagnosis": diag,
        "render_s": round(render_s, 2),
        "stream_s": round(stream_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    started = time.perf_counter()
    model = edgeseg.load("partseg")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-counting-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.sequences):
            row = run_sequence(model, seed, args.frames, Path(tmp))
            rows.append(row)
            exact = sum(p["exact"] for p in row["pairs"])
            misses = [f"{p['class']} found {p['found']} true {p['true']}" for p in row["pairs"] if not p["exact"]]
            print(
                f"seed {seed}: {exact}/{len(row['pairs'])} classes exact, total in {row['found_total']['in']} "
                f"(true {row['true_total']['in']}), {row['stream']['fps']:.1f} fps, latency p50 "
                f"{row['stream']['latency_ms']['p50']:.0f} ms, render {row['render_s']:.1f} s, stream "
                f"{row['stream_s']:.1f} s" + ("; " + "; ".join(misses) if misses else ""),
                flush=True,
            )
            for p in row["diagnosis"]["problems"]:
                print("    ", p, flush=True)
    pairs = [(r["seed"], p) for r in rows for p in r["pairs"]]
    exact = sum(p["exact"] for _, p in pairs)
    fraction = exact / max(len(pairs), 1)
    misses = [
        {"seed": s, "class": p["class"], "found": p["found"], "true": p["true"]} for s, p in pairs if not p["exact"]
    ]
    kinds: dict[str, int] = defaultdict(int)
    for r in rows:
        for p in r["diagnosis"]["problems"]:
            kinds[p["kind"]] += 1
    fps = [r["stream"]["fps"] for r in rows]
    p50 = [r["stream"]["latency_ms"]["p50"] for r in rows]
    p99 = [r["stream"]["latency_ms"]["p99"] for r in rows]
    result = {
        "benchmark": "per-class line-crossing counts of model.stream() on belt sequences",
        "model": "partseg (bundled)",
        "sequences": args.sequences,
        "seeds": [args.first_seed, args.first_seed + args.sequences - 1],
        "frames_per_sequence": args.frames,
        "belt_config": "BeltConfig() defaults",
        "stream_settings": "model.stream(path, counters={'line': LineCounter(line, names=model.names)}, "
        "keep_images=False), all else default (conf 0.25, Tracker() defaults)",
        "pairs": len(pairs),
        "exact_pairs": exact,
        "exact_fraction": round(fraction, 4),
        "target": TARGET,
        "meets_target": fraction >= TARGET,
        "misses": misses,
        "problem_kinds": dict(kinds),
        "true_crossings": sum(r["true_total"]["in"] + r["true_total"]["out"] for r in rows),
        "found_crossings": sum(r["found_total"]["in"] + r["found_total"]["out"] for r in rows),
        "stream": {
            "fps_median": float(np.median(fps)),
            "fps_min": float(np.min(fps)),
            "latency_p50_ms_median": float(np.median(p50)),
            "latency_p99_ms_median": float(np.median(p99)),
            "dropped": sum(r["stream"]["dropped"] for r in rows),
        },
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "python": sys.version.split()[0],
        "versions": versions(("edgeseg", "numpy", "onnxruntime", "opencv-python-headless")),
        "git": git_state(ROOT),
        "command": " ".join(["python", *sys.argv]),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(
        f"{exact}/{len(pairs)} (sequence, class) pairs exact = {fraction:.1%} (target {TARGET:.0%}); "
        f"fps median {result['stream']['fps_median']:.1f}; wall {result['wall_s']:.0f} s"
    )
    for m in misses:
        print(f"  miss: seed {m['seed']} {m['class']}: found {m['found']} true {m['true']}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
