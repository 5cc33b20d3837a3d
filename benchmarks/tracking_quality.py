"""Tracking quality: HOTA / IDF1 / MOTA of edgeseg's tracker next to roboflow ``trackers``' ByteTrack and BoT-SORT,
all fed the same edgeseg detections of synthetic conveyor-belt videos with ground truth.

Protocol (issue 9's tracking-quality target):

1. Sequences: ``--seeds`` (default 1000-1007) with the default ``BeltConfig`` and ``--touch-seeds`` (default
   1100-1107) with heavy touching (``TOUCHING``: every arriving part placed against a cluster, parts lying up to
   30% over each other, twice the arrival rate), ``--frames`` frames each (default 300), written with
   ``write_belt_video`` as mp4 (mp4v) with the MOTChallenge ground truth next to them. None of these seeds was
   used to choose edgeseg's tracker defaults. ``--tune`` adds the tuning sets (seeds 0-7 default, 100-107
   touching), on which the variants in ``TUNING`` are measured; they are never run on the reporting seeds.
2. Detections: the bundled PartSeg model (``edgeseg.load("partseg")``) runs once per *decoded* video frame
   (OpenCV reads the mp4) at conf 0.1, which is what ``model.stream()`` hands its tracker (the stream lowers
   conf to ``TrackerConfig.low_thresh`` = 0.1 so that ByteTrack's second stage sees low-score boxes). The
   per-frame Results are kept in memory, and every tracker gets exactly these detections (boxes, scores, class
   ids; edgeseg's also gets the masks).
3. Trackers, each with a fresh state per sequence:
   - ``edgeseg-mask``: ``edgeseg.Tracker()`` (defaults: mask-IoU association);
   - ``edgeseg-box``: ``edgeseg.Tracker(association="box")``;
   - ``bytetrack``: ``trackers.ByteTrackTracker()`` with its defaults (high 0.6, activation 0.7, IoU 0.1 in
     both stages, 2 consecutive frames to confirm, buffer 30 frames at 30 fps);
   - ``botsort``: ``trackers.BoTSORTTracker()`` with its defaults (high 0.6, activation 0.7, fused IoU 0.2 /
     0.5 / 0.3 in the three stages, 2 frames to confirm but instant on the first frame, buffer 30), no ReID
     (the package has none), camera-motion compensation *on* (its default: sparse optical flow, fed the frame);
   - ``botsort-nocmc``: the same with ``enable_cmc=False`` (the belt camera is static);
   - ``bytetrack-ours`` and ``botsort-ours``: the peers with the thresholds of edgeseg's defaults where they
     map 1:1 (high 0.5, new track 0.6, confirm on first sight, buffer 30; BoT-SORT: fused 0.2 / 0.5 / 0.3,
     no CMC, exactly edgeseg's stages; ByteTrack has one IoU threshold for both stages: 0.2 = our stage 1).
   A tracker's output is every detection it gives a confirmed id, written as MOTChallenge text
   ``frame,id,x,y,w,h,score,-1,-1,-1`` (the detection's box, 1-based frames).
4. Evaluation: ``trackers.eval.evaluate_mot_sequences`` (the package's TrackEval-parity implementation of
   HOTA, CLEAR and Identity; IoU 0.5 for CLEAR/Identity) against the ground truth made class-agnostic (the
   class column set to 1, since MOTChallenge evaluation scores class 1 only and treats class 2 as a
   distractor; the belt files carry class index + 1). Per sequence and combined: HOTA, DetA, AssA, IDF1, MOTA,
   ID switches. One sequence is cross-checked with ``motmetrics`` (MOTA, IDF1, IDSW) where it is installed.

Run it in a virtual environment with edgeseg and ``trackers`` (which needs ``opencv-python`` and ``supervision``,
so not the project's own venv):

    python3 -m venv .bench-venv && .bench-venv/bin/pip install . "trackers==2.6.1" motmetrics

``.bench-venv`` holds a copy of edgeseg, not a link to the checkout: reinstall it (``.bench-venv/bin/pip install
--no-deps --force-reinstall .``) after the sources change; the JSON records whether the installed Python files
match the checkout (``installed_matches_checkout``) and the checkout's git state when the run started.

Command that produced ``benchmarks/results/tracking_quality.json`` (10-15 minutes on the shared 2-core machine,
about half of it the ``--tune`` sets; the model takes 12-130 ms a frame there depending on the other load):

    .bench-venv/bin/python benchmarks/tracking_quality.py --tune --json benchmarks/results/tracking_quality.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

import edgeseg
from edgeseg.synthparts import BeltConfig, write_belt_video

from common import box_iou, git_state, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
DETECT_CONF = 0.1  # what model.stream() runs the model at when tracking (TrackerConfig.low_thresh)
TOUCHING = {"touching": 1.0, "max_overlap": 0.3, "spawn_rate": 0.3}
METRICS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")
REPORT_ORDER = (
    "edgeseg-mask",
    "edgeseg-box",
    "bytetrack",
    "botsort",
    "botsort-nocmc",
    "bytetrack-ours",
    "botsort-ours",
)
# Variants measured only on the tuning seeds: (name, TrackerConfig overrides).
TUNING = (
    ("edgeseg-mask", {}),
    ("edgeseg-box", {"association": "box"}),
    ("mask min_hits=2", {"min_hits": 2}),
    ("mask high=0.6 new=0.7", {"high_thresh": 0.6, "new_track_thresh": 0.7}),
    ("mask min_hits=2 high=0.6 new=0.7", {"min_hits": 2, "high_thresh": 0.6, "new_track_thresh": 0.7}),
    ("mask lost_frames=60", {"lost_frames": 60}),
    ("mask match_iou=0.1", {"match_iou": 0.1}),
    ("mask second_match_iou=0.3", {"second_match_iou": 0.3}),
    ("mask fuse_score=False", {"fuse_score": False}),
)


@dataclasses.dataclass
class Sequence:
    name: str
    seed: int
    gt_path: Path  # class-agnostic MOTChallenge ground truth
    frames: list[np.ndarray]  # decoded BGR frames (for BoT-SORT's CMC)
    results: list[Any]  # edgeseg Results at DETECT_CONF, one per frame
    render_s: float
    detect_ms: float  # mean model time per frame


def installed_matches_checkout() -> bool | None:
    """Whether the imported edgeseg's Python files equal the checkout's (None outside a checkout)."""
    src = ROOT / "src" / "edgeseg"
    installed = Path(edgeseg.__file__).resolve().parent
    if installed == src.resolve():
        return True
    if not src.is_dir():
        return None
    for f in src.rglob("*.py"):
        g = installed / f.relative_to(src)
        if not g.is_file() or g.read_bytes() != f.read_bytes():
            return False
    return True


def prepare(model: Any, seed: int, frames: int, config: BeltConfig, name: str, folder: Path) -> Sequence:
    """Render, write, decode and detect one sequence."""
    t0 = time.perf_counter()
    video = write_belt_video(folder / f"{name}.mp4", frames, seed, config)
    render_s = time.perf_counter() - t0
    rows = np.loadtxt(video.mot_path, delimiter=",", ndmin=2)
    gt_dir = folder / "gt"
    gt_dir.mkdir(exist_ok=True)
    gt_path = gt_dir / f"{name}.txt"
    with open(gt_path, "w") as f:
        for r in rows:
            f.write(f"{int(r[0])},{int(r[1])},{int(r[2])},{int(r[3])},{int(r[4])},{int(r[5])},1,1,{r[8]:.3f}\n")
    cap = cv2.VideoCapture(str(video.path))
    decoded = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        decoded.append(image)
    cap.release()
    if len(decoded) != video.frames:
        raise RuntimeError(f"{video.path}: decoded {len(decoded)} frames of {video.frames}")
    t1 = time.perf_counter()
    results = [model(image, conf=DETECT_CONF) for image in decoded]
    detect_ms = (time.perf_counter() - t1) / len(decoded) * 1e3
    for path in (video.path, video.coco_path, video.counts_path, video.mot_path):
        path.unlink()
    return Sequence(name, seed, gt_path, decoded, results, render_s, detect_ms)


def mot_lines(frame: int, ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> list[str]:
    out = []
    for tid, (x1, y1, x2, y2), s in zip(ids.tolist(), boxes.tolist(), scores.tolist()):
        out.append(f"{frame},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.4f},-1,-1,-1\n")
    return out


def run_edgeseg(seq: Sequence, **overrides: Any) -> list[str]:
    tracker = edgeseg.Tracker(**overrides)
    lines = []
    for k, r in enumerate(seq.results):
        out = tracker.update(r)
        keep = out.track_ids > 0
        lines += mot_lines(k + 1, out.track_ids[keep], np.asarray(out.boxes)[keep], np.asarray(out.scores)[keep])
    return lines


def run_peer(seq: Sequence, make: Callable[[], Any], pass_frame: bool) -> list[str]:
    import supervision as sv

    tracker = make()
    lines = []
    for k, (r, image) in enumerate(zip(seq.results, seq.frames)):
        dets = sv.Detections(
            xyxy=np.asarray(r.boxes, np.float32).reshape(-1, 4),
            confidence=np.asarray(r.scores, np.float32),
            class_id=np.asarray(r.class_ids, int),
        )
        out = tracker.update(dets, image) if pass_frame else tracker.update(dets)
        ids = np.asarray(out.tracker_id, int)
        keep = ids >= 0
        conf = out.confidence if out.confidence is not None else np.ones(len(out))
        lines += mot_lines(k + 1, ids[keep] + 1, out.xyxy[keep], np.asarray(conf)[keep])
    return lines


def trackers_table() -> dict[str, tuple[Callable[[], Any], bool]]:
    """The peers: name -> (factory, whether update() gets the frame)."""
    from trackers import BoTSORTTracker, ByteTrackTracker

    ours = {"track_activation_threshold": 0.6, "minimum_consecutive_frames": 1, "lost_track_buffer": 30}
    return {
        "bytetrack": (lambda: ByteTrackTracker(), False),
        "botsort": (lambda: BoTSORTTracker(), True),
        "botsort-nocmc": (lambda: BoTSORTTracker(enable_cmc=False), False),
        "bytetrack-ours": (
            lambda: ByteTrackTracker(high_conf_det_threshold=0.5, minimum_iou_threshold=0.2, **ours),
            False,
        ),
        "botsort-ours": (
            lambda: BoTSORTTracker(
                high_conf_det_threshold=0.5,
                minimum_iou_threshold_first_assoc=0.2,
                minimum_iou_threshold_second_assoc=0.5,
                minimum_iou_threshold_unconfirmed_assoc=0.3,
                enable_cmc=False,
                **ours,
            ),
            False,
        ),
    }


def evaluate(gt_dir: Path, out_dir: Path, names: list[str]) -> dict[str, Any]:
    """trackers.eval over the sequences ``names``: per-sequence and combined metrics."""
    from trackers.eval import evaluate_mot_sequences

    seqmap = out_dir / "seqmap.txt"
    seqmap.write_text("name\n" + "".join(f"{n}\n" for n in names))
    res = evaluate_mot_sequences(gt_dir, out_dir, seqmap=seqmap, metrics=["CLEAR", "HOTA", "Identity"])

    def pick(s: Any) -> dict[str, float]:
        return {
            "HOTA": round(100 * s.HOTA.HOTA, 2),
            "DetA": round(100 * s.HOTA.DetA, 2),
            "AssA": round(100 * s.HOTA.AssA, 2),
            "IDF1": round(100 * s.Identity.IDF1, 2),
            "MOTA": round(100 * s.CLEAR.MOTA, 2),
            "IDSW": int(s.CLEAR.IDSW),
            "FP": int(s.CLEAR.CLR_FP),
            "FN": int(s.CLEAR.CLR_FN),
        }

    return {"combined": pick(res.aggregate), "sequences": {n: pick(res.sequences[n]) for n in names}}


def motmetrics_check(gt_path: Path, pred_lines: list[str]) -> dict[str, Any] | None:
    """MOTA / IDF1 / IDSW of one sequence with motmetrics (IoU 0.5), or None when it is not installed."""
    try:
        import motmetrics as mm
    except ImportError:
        return None
    gt = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    pred = np.array([[float(v) for v in line.split(",")[:6]] for line in pred_lines]).reshape(-1, 6)
    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(1, int(gt[:, 0].max()) + 1):
        g = gt[gt[:, 0] == f]
        p = pred[pred[:, 0] == f]
        # 1 - IoU, NaN (no match) below IoU 0.5: what mm.distances.iou_matrix computes (it uses np.asfarray,
        # gone in NumPy 2, so the matrix is made here).
        iou = box_iou(
            np.concatenate([g[:, 2:4], g[:, 2:4] + g[:, 4:6]], 1), np.concatenate([p[:, 2:4], p[:, 2:4] + p[:, 4:6]], 1)
        )
        dist = np.where(iou >= 0.5, 1.0 - iou, np.nan)
        acc.update(g[:, 1].astype(int).tolist(), p[:, 1].astype(int).tolist(), dist, frameid=f)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="seq")
    row = summary.loc["seq"]
    return {
        "MOTA": round(100 * float(row["mota"]), 2),
        "IDF1": round(100 * float(row["idf1"]), 2),
        "IDSW": int(row["num_switches"]),
    }


def run_set(
    model: Any, label: str, seeds: list[int], frames: int, config: BeltConfig, folder: Path, variants: dict
) -> dict[str, Any]:
    """Prepare each sequence of a set, run every variant on it, evaluate; returns the set's report."""
    names = []
    outputs: dict[str, dict[str, list[str]]] = {v: {} for v in variants}
    timing = {"render_s": 0.0, "detect_ms": [], "track_s": dict.fromkeys(variants, 0.0)}
    check = None
    for seed in seeds:
        name = f"{label}-{seed}"
        seq = prepare(model, seed, frames, config, name, folder)
        names.append(name)
        timing["render_s"] += seq.render_s
        timing["detect_ms"].append(seq.detect_ms)
        for variant, run in variants.items():
            t = time.perf_counter()
            outputs[variant][name] = run(seq)
            timing["track_s"][variant] += time.perf_counter() - t
        if check is None:
            check = {
                "sequence": name,
                "tracker": next(iter(variants)),
                "motmetrics": motmetrics_check(seq.gt_path, outputs[next(iter(variants))][name]),
            }
        dets = sum(len(r) for r in seq.results)
        print(
            f"  {name}: {len(seq.frames)} frames, {dets / len(seq.frames):.1f} detections/frame at conf "
            f"{DETECT_CONF}, render {seq.render_s:.1f} s, model {seq.detect_ms:.1f} ms/frame",
            flush=True,
        )
        seq.frames.clear()
        seq.results.clear()
    report: dict[str, Any] = {"trackers": {}}
    for variant in variants:
        out_dir = folder / "pred" / label / variant
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, lines in outputs[variant].items():
            (out_dir / f"{name}.txt").write_text("".join(lines))
        report["trackers"][variant] = evaluate(folder / "gt", out_dir, names)
    if check is not None and check["motmetrics"] is not None:
        check["trackers_eval"] = {
            k: report["trackers"][check["tracker"]]["sequences"][check["sequence"]][k] for k in ("MOTA", "IDF1", "IDSW")
        }
    report["cross_check"] = check
    report["timing"] = {
        "render_s": round(timing["render_s"], 1),
        "model_ms_per_frame": round(float(np.mean(timing["detect_ms"])), 1),
        "track_ms_per_frame": {v: round(s / (len(seeds) * frames) * 1e3, 3) for v, s in timing["track_s"].items()},
    }
    return report


def print_table(title: str, report: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  {'tracker':34s}" + "".join(f"{m:>8s}" for m in METRICS))
    for variant, r in report["trackers"].items():
        c = r["combined"]
        print(f"  {variant:34s}" + "".join(f"{c[m]:8.2f}" if m != "IDSW" else f"{c[m]:8d}" for m in METRICS))
    if report.get("cross_check"):
        print(f"  cross-check {report['cross_check']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1000, 1008)))
    parser.add_argument("--touch-seeds", type=int, nargs="+", default=list(range(1100, 1108)))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--tune", action="store_true", help="also measure TUNING variants on seeds 0-7 and 100-107")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=list(range(0, 8)))
    parser.add_argument("--tune-touch-seeds", type=int, nargs="+", default=list(range(100, 108)))
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning, module="trackers")
    reporting = set(args.seeds) | set(args.touch_seeds)
    if args.tune and reporting & (set(args.tune_seeds) | set(args.tune_touch_seeds)):
        parser.error("tuning seeds must be disjoint from the reporting seeds")
    started = time.perf_counter()
    git = git_state(ROOT)
    matches = installed_matches_checkout()
    model = edgeseg.load("partseg")
    default = BeltConfig()
    touching = dataclasses.replace(default, **TOUCHING)
    peers = trackers_table()
    variants: dict[str, Callable[[Sequence], list[str]]] = {
        "edgeseg-mask": lambda s: run_edgeseg(s),
        "edgeseg-box": lambda s: run_edgeseg(s, association="box"),
    }
    for name, (make, pass_frame) in peers.items():
        variants[name] = lambda s, make=make, pass_frame=pass_frame: run_peer(s, make, pass_frame)
    sets: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgeseg-trackq-") as tmp:
        folder = Path(tmp)
        plan = [("default", args.seeds, default, variants), ("touching", args.touch_seeds, touching, variants)]
        if args.tune:
            tune_variants = {name: (lambda s, o=overrides: run_edgeseg(s, **o)) for name, overrides in TUNING}
            tune_variants["bytetrack"] = variants["bytetrack"]
            tune_variants["botsort"] = variants["botsort"]
            plan += [
                ("tune-default", args.tune_seeds, default, tune_variants),
                ("tune-touching", args.tune_touch_seeds, touching, tune_variants),
            ]
        for label, seeds, config, vs in plan:
            print(f"{label}: seeds {seeds[0]}-{seeds[-1]}", flush=True)
            sets[label] = run_set(model, label, seeds, args.frames, config, folder, vs)
            sets[label]["seeds"] = seeds
            sets[label]["belt_config"] = {
                k: v for k, v in dataclasses.asdict(config).items() if v != getattr(default, k)
            }
            print_table(f"{label} (combined over {len(seeds)} sequences)", sets[label])
    result = {
        "benchmark": "tracking quality on belt sequences (HOTA / IDF1 / MOTA)",
        "model": f"partseg (bundled), conf {DETECT_CONF}, iou 0.7",
        "frames_per_sequence": args.frames,
        "evaluator": "trackers.eval.evaluate_mot_sequences (CLEAR, HOTA, Identity; IoU 0.5), class-agnostic",
        "trackers": {
            "edgeseg-mask": "edgeseg.Tracker() defaults (mask IoU)",
            "edgeseg-box": "edgeseg.Tracker(association='box')",
            "bytetrack": "trackers.ByteTrackTracker() defaults",
            "botsort": "trackers.BoTSORTTracker() defaults (CMC on: sparseOptFlow), no ReID",
            "botsort-nocmc": "trackers.BoTSORTTracker(enable_cmc=False)",
            "bytetrack-ours": "ByteTrackTracker(high_conf_det_threshold=0.5, track_activation_threshold=0.6, "
            "minimum_consecutive_frames=1, minimum_iou_threshold=0.2, lost_track_buffer=30)",
            "botsort-ours": "BoTSORTTracker(high_conf_det_threshold=0.5, track_activation_threshold=0.6, "
            "minimum_consecutive_frames=1, minimum_iou_threshold_first/second/unconfirmed_assoc=0.2/0.5/0.3, "
            "lost_track_buffer=30, enable_cmc=False)",
        },
        "touching_config": TOUCHING,
        "sets": sets,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "versions": versions(
            ("edgeseg", "numpy", "onnxruntime", "opencv-python", "trackers", "supervision", "scipy", "motmetrics")
        ),
        "git": git,
        "installed_matches_checkout": matches,
        "command": " ".join(["python", *sys.argv]),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(f"\nwall {result['wall_s']:.0f} s")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
