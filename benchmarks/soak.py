"""Soak and concurrency: does postprocessing leak, and is one Model safe to share between threads?

Soak: every image is letterboxed and run through the model once; then the head (decode, NMS, masks at
original resolution, the same call ``Model.__call__`` makes after inference) and the COCO RLE of its
masks are run on those raw outputs over and over (default 10,000 calls, alternating conf 0.25 and conf
0.001 / max_det 300 so both the small and the big allocation paths repeat). The process RSS is sampled
every ``--every`` calls (after a ``gc.collect()``); the report gives the RSS at the start (model loaded,
outputs ready, nothing postprocessed yet), after the warm-up calls, at the end, and the least-squares
slope of RSS in KB per 1000 calls, over the calls after the warm-up and over the second half of the run.
The heap keeps stepping up for a while after the warm-up (malloc's high-water mark, a few hundred KB,
then flat), so the verdict reads the second half: "stable" when the RSS grew by less than 512 KB there
and its slope is under 20 KB per 1000 calls (a leak of 50 bytes a call would show as 50).

Concurrency: 8 threads call the same Model on the same images (full calls: preprocessing, ONNX Runtime,
postprocessing) and 8 threads call its head on the same raw outputs; every result is compared
bit for bit (boxes, scores, class_ids, the packed masks and their RLE strings) with the single-threaded
result of the same image and settings.

    python benchmarks/soak.py                                   # about 2 minutes on 2 cores
    python benchmarks/soak.py --quick                           # 1,000 calls, fewer threaded calls
    python benchmarks/soak.py --json benchmarks/results/soak.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edgeseg
from edgeseg._core import Letterbox
from edgeseg.heads import Instances, PostprocessOptions
from edgeseg.io import list_images, read_image

from common import git_state, versions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Alternating settings of the soak: few detections, and the most the model gives.
SETTINGS = (PostprocessOptions(conf=0.25), PostprocessOptions(conf=0.001, max_det=300))
STABLE_GROWTH_KB = 512  # RSS growth over the second half of the run below this ...
STABLE_SLOPE_KB = 20.0  # ... and a slope there below this (KB per 1000 calls): "stable"


def rss_kb() -> int:
    """Resident set size of this process now, in KB (Linux: /proc; elsewhere: the peak, which only grows)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak


@dataclass
class Run:
    """One image's raw model outputs and letterbox, ready for the head."""

    name: str
    outputs: list[np.ndarray]
    letterbox: Letterbox


def fingerprint(inst: Instances | edgeseg.Result) -> tuple[bytes, ...]:
    """Everything a result holds, as bytes: equal fingerprints mean bit-identical results."""
    m = inst.masks
    rles = "\n".join(r["counts"] for r in m.rle()).encode()
    return (
        np.ascontiguousarray(inst.boxes).tobytes(),
        np.ascontiguousarray(inst.scores).tobytes(),
        np.ascontiguousarray(inst.class_ids).tobytes(),
        m.rects.tobytes(),
        m.offsets.tobytes(),
        m.data.tobytes(),
        rles,
    )


def load_runs(model: edgeseg.Model, paths: list[Path]) -> list[Run]:
    """Letterbox and infer every image once (the soak repeats only the postprocessing)."""
    runs = []
    for path in paths:
        tensor, boxes = model.preprocess([read_image(path)])
        outputs = model.runtime.run({model.spec.input.name: tensor})
        runs.append(Run(path.name, outputs, boxes[0]))
    return runs


def postprocess(model: edgeseg.Model, run: Run, options: PostprocessOptions) -> Instances:
    """The head on one image's raw outputs, plus the RLE of its masks (what a COCO export does)."""
    inst = model.head(run.outputs, 0, run.letterbox, options)
    inst.masks.rle()
    return inst


def soak(model: edgeseg.Model, runs: list[Run], calls: int, every: int, warmup: int) -> dict[str, Any]:
    """``calls`` postprocess calls cycling over images and settings, with RSS samples."""
    gc.collect()
    start = rss_kb()
    samples: list[tuple[int, int]] = [(0, start)]
    detections = 0
    t0 = time.perf_counter()
    for i in range(1, calls + 1):
        inst = postprocess(model, runs[(i // 2) % len(runs)], SETTINGS[i % 2])  # every image in both settings
        detections += len(inst.scores)
        del inst
        if i % every == 0 or i == warmup:
            gc.collect()
            samples.append((i, rss_kb()))
    wall = time.perf_counter() - t0
    after_warmup = next(kb for n, kb in samples if n == warmup)
    end = samples[-1][1]
    slope = _slope([(n, kb) for n, kb in samples if n >= warmup])
    half = [(n, kb) for n, kb in samples if n >= calls // 2]
    slope_half = _slope(half)
    growth_half = end - half[0][1]
    stable = growth_half < STABLE_GROWTH_KB and slope_half < STABLE_SLOPE_KB
    return {
        "calls": calls,
        "images": len(runs),
        "settings": [{"conf": s.conf, "max_det": s.max_det} for s in SETTINGS],
        "detections_total": detections,
        "warmup_calls": warmup,
        "sample_every": every,
        "rss_kb_start": start,
        "rss_kb_after_warmup": after_warmup,
        "rss_kb_end": end,
        "rss_kb_max": max(kb for _, kb in samples),
        "growth_after_warmup_kb": end - after_warmup,
        "slope_kb_per_1000_calls": round(slope, 2),
        "growth_second_half_kb": growth_half,
        "slope_second_half_kb_per_1000_calls": round(slope_half, 2),
        "verdict": "stable" if stable else "GROWING",
        "ms_per_call": round(wall * 1e3 / calls, 3),
        "wall_s": round(wall, 1),
        "samples": samples,
    }


def _slope(samples: list[tuple[int, int]]) -> float:
    """Least-squares slope of (call, RSS KB) samples, in KB per 1000 calls."""
    if len(samples) < 2:
        return 0.0
    a = np.array(samples, np.float64)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0] * 1000)


def run_threads(n_threads: int, per_thread: int, job) -> tuple[int, list[str]]:
    """``job(thread, k)`` ``per_thread`` times in each of ``n_threads`` threads, all started together;
    returns the number of calls and the mismatches/errors they reported."""
    problems: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)
    done = [0]

    def worker(t: int) -> None:
        barrier.wait()  # all threads hit the model at once
        for k in range(per_thread):
            try:
                problem = job(t, k)
            except Exception as exc:  # a crash in one thread must be reported, not lost
                problem = f"thread {t} call {k}: {type(exc).__name__}: {exc}"
            with lock:
                done[0] += 1
                if problem:
                    problems.append(problem)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return done[0], problems


def concurrency(
    model: edgeseg.Model, images: list[tuple[str, np.ndarray]], runs: list[Run], n_threads: int, model_calls: int,
    head_calls: int,
) -> dict[str, Any]:  # fmt: skip
    """Threads sharing one Model (full calls) and its head (raw outputs), against single-threaded results."""
    out: dict[str, Any] = {"threads": n_threads}
    # Single-threaded references first.
    ref_model = {name: fingerprint(model(image)) for name, image in images}
    ref_head = {(r.name, s): fingerprint(postprocess(model, r, opt)) for r in runs for s, opt in enumerate(SETTINGS)}

    def model_job(t: int, k: int) -> str | None:
        name, image = images[(t + k) % len(images)]  # threads start on different images
        if fingerprint(model(image)) != ref_model[name]:
            return f"thread {t} call {k}: {name}: result differs from the single-threaded one"
        return None

    def head_job(t: int, k: int) -> str | None:
        run = runs[(t * 3 + k) % len(runs)]
        s = (t + k) % 2
        if fingerprint(postprocess(model, run, SETTINGS[s])) != ref_head[(run.name, s)]:
            return f"thread {t} call {k}: {run.name} setting {s}: postprocess differs from the single-threaded one"
        return None

    for kind, job, total in (("model", model_job, model_calls), ("postprocess", head_job, head_calls)):
        t0 = time.perf_counter()
        calls, problems = run_threads(n_threads, max(1, total // n_threads), job)
        out[kind] = {
            "calls": calls,
            "identical": not problems,
            "problems": problems[:20],
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    """The RESULTS.md tables."""
    s, c = result["soak"], result["concurrency"]
    mb = 1024
    lines = [
        "| soak calls | RSS start MB | after warm-up MB | end MB | growth after warm-up KB "
        "| slope KB / 1000 calls: after warm-up, second half | ms / call | verdict |",
        "|---|---|---|---|---|---|---|---|",
        f"| {s['calls']:,} ({s['warmup_calls']} warm-up) | {s['rss_kb_start'] / mb:.1f} "
        f"| {s['rss_kb_after_warmup'] / mb:.1f} | {s['rss_kb_end'] / mb:.1f} | {s['growth_after_warmup_kb']} "
        f"| {s['slope_kb_per_1000_calls']:.1f}, {s['slope_second_half_kb_per_1000_calls']:.1f} "
        f"| {s['ms_per_call']:.2f} | {s['verdict']} |",
        "",
        "| threads | what | calls | identical to single-threaded |",
        "|---|---|---|---|",
    ]
    for kind, label in (("model", "`model(image)` (preprocess, inference, postprocess)"),
                        ("postprocess", "head + RLE on shared raw outputs")):  # fmt: skip
        r = c[kind]
        lines.append(f"| {c['threads']} | {label} | {r['calls']} | {'yes' if r['identical'] else '**NO**'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "yolov8n-seg.onnx")
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    parser.add_argument("--limit", type=int, default=8, help="images to cycle over (default 8)")
    parser.add_argument("--calls", type=int, default=None, help="soak postprocess calls (default 10000; --quick 1000)")
    parser.add_argument("--every", type=int, default=None, help="RSS sample interval in calls (default calls / 40)")
    parser.add_argument("--warmup", type=int, default=None, help="calls before the 'after warm-up' RSS (default 1000)")
    parser.add_argument("--threads", type=int, default=8, help="threads sharing the model (default 8)")
    parser.add_argument("--model-calls", type=int, default=None, help="threaded model calls (default 320; --quick 64)")
    parser.add_argument("--head-calls", type=int, default=None, help="threaded head calls (default 4000; --quick 800)")
    parser.add_argument("--quick", action="store_true", help="a short run (about 20 s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    calls = args.calls or (1000 if args.quick else 10_000)
    every = args.every or max(1, calls // 40)
    warmup = min(args.warmup or (100 if args.quick else 1000), calls)
    model_calls = args.model_calls or (64 if args.quick else 320)
    head_calls = args.head_calls or (800 if args.quick else 4000)

    started = time.perf_counter()
    git = git_state(ROOT)
    model = edgeseg.load(args.model)
    paths = list_images(args.images)[: args.limit]
    runs = load_runs(model, paths)
    images = [(p.name, read_image(p)) for p in paths]
    print(f"model {args.model.name}, {len(paths)} images; soak: {calls} postprocess calls", file=sys.stderr)
    soak_result = soak(model, runs, calls, every, warmup)
    print(
        f"soak: RSS {soak_result['rss_kb_start'] / 1024:.1f} -> {soak_result['rss_kb_after_warmup'] / 1024:.1f} "
        f"(after {warmup}) -> {soak_result['rss_kb_end'] / 1024:.1f} MB, slope "
        f"{soak_result['slope_kb_per_1000_calls']:.2f} KB / 1000 calls after the warm-up, "
        f"{soak_result['slope_second_half_kb_per_1000_calls']:.2f} over the second half: {soak_result['verdict']}",
        file=sys.stderr,
    )
    print(f"threads: {args.threads} x model ({model_calls} calls), {args.threads} x postprocess ({head_calls})",
          file=sys.stderr)  # fmt: skip
    conc = concurrency(model, images, runs, args.threads, model_calls, head_calls)
    result = {
        "model": args.model.name,
        "images": [p.name for p in paths],
        "soak": soak_result,
        "concurrency": conc,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "versions": versions(("edgeseg", "numpy", "onnxruntime", "opencv-python-headless")),
        "git": git,
        "command": " ".join(["python", *sys.argv]),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print("\n" + markdown(result))
    for kind in ("model", "postprocess"):
        for problem in conc[kind]["problems"]:
            print(f"  {kind}: {problem}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    print(f"took {result['wall_s']:.0f} s", file=sys.stderr)
    ok = soak_result["verdict"] == "stable" and conc["model"]["identical"] and conc["postprocess"]["identical"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
