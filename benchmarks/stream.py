"""Stream benchmarks of issue 9: throughput on a file, live latency, memory, and open/close cycles.

1. Throughput on a file. The frames of a belt video are decoded into memory first; ``model(frame)`` in a loop
   over them gives the reference rate. ``model.stream(file)`` then reads, decodes, preprocesses, infers,
   postprocesses (and tracks) the same file in its pipeline: target >= 0.95x the loop's rate. Run again with
   inference given N-1 of the N cores (``threads=N-1``): target >= 0.9 x 1000 / inference_ms, where
   inference_ms is ``model.infer`` alone on the same tensors with the same threads.
2. Live latency. A simulated 60 fps camera (an iterable that yields a frame every 1/60 s whether or not it is
   read; ``realtime=True``) faster than the model: capture-to-result latency p99 against
   2 x (inference + postprocess) + one frame interval; frames == processed + dropped (drops counted
   exactly); RSS sampled through the run (flat = no growth after warm-up).
3. Soak: ``--soak N`` frames through ``stream()`` (tracking on), RSS after warm-up and at the end
   (target: growth <= 5 MB); then 200 open/close cycles, threads left behind (target: none).

    python benchmarks/stream.py --json benchmarks/results/stream.json            # about 8 minutes on 2 cores
    python benchmarks/stream.py --soak 10000 --json benchmarks/results/stream-soak.json --skip-throughput --skip-live
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import edgeseg

from common import git_state, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def belt_video(folder: Path, frames: int, seed: int) -> Path:
    from edgeseg.synthparts import write_belt_video

    return Path(write_belt_video(folder / f"belt-{seed}.mp4", frames, seed=seed).path)


def decode_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def inference_ms(model: edgeseg.Model, frames: list[np.ndarray], n: int = 30) -> float:
    tensors = [model.preprocess([f])[0] for f in frames[:n]]
    model.infer(tensors[0])
    t0 = time.perf_counter()
    for t in tensors:
        model.infer(t)
    return (time.perf_counter() - t0) * 1e3 / len(tensors)


def throughput(model_path: str, video: Path, threads: int | None, repeats: int) -> list[dict[str, Any]]:
    """Loop rate, inference alone and the stream (without and with tracking), interleaved ``repeats`` times.

    This VM's speed drifts by 10-15% over minutes, so each figure is the median over repeats, and each
    ratio is taken within one repeat (stream and reference measured a few seconds apart).
    """
    model = edgeseg.load(model_path, threads=threads)
    frames = decode_all(video)
    model(frames[0])  # warm-up
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in frames:
            model(f)
        loop_fps = len(frames) / (time.perf_counter() - t0)
        inf_ms = inference_ms(model, frames)
        for track in (False, True):
            with model.stream(video, track=track, keep_images=False) as stream:
                t0 = time.perf_counter()
                n = sum(1 for _ in stream)
                stream_fps = n / (time.perf_counter() - t0)
                stage_ms = stream.summary()["stage_ms"]
            runs[track].append(
                {
                    "loop_fps": loop_fps,
                    "inference_ms": inf_ms,
                    "stream_fps": stream_fps,
                    "stream_over_loop": stream_fps / loop_fps,
                    "stream_over_inference_bound": stream_fps / (1000 / inf_ms),
                    **{f"stage_{k}_ms": v for k, v in stage_ms.items()},
                }
            )
    rows = []
    for track, reps in runs.items():
        med = {k: round(float(np.median([r[k] for r in reps])), 3) for k in reps[0]}
        rows.append(
            {
                "model": Path(model_path).name,
                "threads": threads,
                "track": track,
                "frames": len(frames),
                "repeats": repeats,
                **med,
                "stream_over_loop_each": [round(r["stream_over_loop"], 3) for r in reps],
                "stream_over_inference_bound_each": [round(r["stream_over_inference_bound"], 3) for r in reps],
            }
        )
    return rows


def live_latency(model_path: str, frame: np.ndarray, fps: float, seconds: float, threads: int | None) -> dict:
    model = edgeseg.load(model_path, threads=threads)
    model(frame)
    n = int(fps * seconds)
    samples: list[float] = []

    def camera():
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield frame

    rss0 = rss_mb()
    with model.stream(camera(), realtime=True, keep_images=False) as stream:
        for r in stream:
            if r.frame_index % int(fps) == 0:
                samples.append(rss_mb())
        summary = stream.summary()
    post = summary["stage_ms"]["postprocess"] + summary["stage_ms"].get("track", 0.0)
    bound = 2 * (summary["stage_ms"]["inference"] + post) + 1000 / fps
    half = samples[len(samples) // 2 :]
    return {
        "model": Path(model_path).name,
        "threads": threads,
        "camera_fps": fps,
        "frames": summary["frames"],
        "processed": summary["processed"],
        "dropped": summary["dropped"],
        "drops_exact": summary["frames"] == summary["processed"] + summary["dropped"],
        "latency_ms": summary["latency_ms"],
        "stage_ms": summary["stage_ms"],
        "latency_p99_bound_ms": round(bound, 2),
        "latency_p99_met": summary["latency_ms"]["p99"] <= bound,
        "rss_mb_start": round(rss0, 1),
        "rss_mb_second_half_min_max": [round(min(half), 1), round(max(half), 1)] if half else None,
    }


def soak(model_path: str, frames: list[np.ndarray], n: int, cycles: int) -> dict[str, Any]:
    model = edgeseg.load(model_path)
    warm = min(500, n // 5)
    rss: list[tuple[int, float]] = []

    def source():
        for i in range(n):
            yield frames[i % len(frames)]

    t0 = time.perf_counter()
    with model.stream(source(), keep_images=False) as stream:
        for r in stream:
            if r.frame_index % 250 == 0 or r.frame_index == warm:
                gc.collect()
                rss.append((r.frame_index, rss_mb()))
        summary = stream.summary()
    seconds = time.perf_counter() - t0
    gc.collect()
    rss.append((n, rss_mb()))
    after_warm = next(v for i, v in rss if i >= warm)
    growth = rss[-1][1] - after_warm
    baseline = {t.ident for t in threading.enumerate()}
    t1 = time.perf_counter()
    for i in range(cycles):
        with model.stream(frames, keep_images=False) as stream:
            for r in stream:
                if r.frame_index >= i % 3:
                    break
    time.sleep(0.2)
    left = [t.name for t in threading.enumerate() if t.ident not in baseline]
    return {
        "model": Path(model_path).name,
        "frames": summary["processed"],
        "seconds": round(seconds, 1),
        "rss_mb_after_warmup": round(after_warm, 1),
        "rss_mb_end": round(rss[-1][1], 1),
        "rss_growth_mb": round(growth, 2),
        "rss_samples": [[i, round(v, 1)] for i, v in rss],
        "growth_met": growth <= 5.0,
        "open_close_cycles": cycles,
        "cycles_seconds": round(time.perf_counter() - t1, 1),
        "threads_left": left,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="partseg," + str(SHARED / "models" / "yolov8n-seg.onnx"))
    ap.add_argument("--frames", type=int, default=150, help="frames of the belt video (default 150)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each throughput figure")
    ap.add_argument("--live-seconds", type=float, default=10.0)
    ap.add_argument("--soak", type=int, default=0, help="frames of the soak (0: no soak)")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    models = [m for m in args.models.split(",") if m]
    report: dict[str, Any] = {
        "command": "python benchmarks/stream.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu_count": cores, "platform": platform.platform(), "processor": platform.processor()},
        "git": git_state(ROOT),
        "versions": versions(("numpy", "onnxruntime", "opencv-python-headless")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        video = belt_video(Path(tmp), args.frames, seed=1001)
        frames = decode_all(video)
        if not args.skip_throughput:
            rows = []
            for m in models:
                for threads in (None, max(1, cores - 1)):
                    for row in throughput(m, video, threads, args.repeats):
                        print(json.dumps(row), flush=True)
                        rows.append(row)
            report["throughput"] = rows
        if not args.skip_live:
            rows = []
            for m in models:
                row = live_latency(m, frames[len(frames) // 2], 60.0, args.live_seconds, None)
                print(json.dumps(row), flush=True)
                rows.append(row)
            report["live"] = rows
        if args.soak:
            row = soak(models[0], frames[:60], args.soak, args.cycles)
            print(json.dumps({k: v for k, v in row.items() if k != "rss_samples"}), flush=True)
            report["soak"] = row
    write_json(args.json, report)


if __name__ == "__main__":
    main()
