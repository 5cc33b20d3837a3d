"""edgeseg against its peers (Ultralytics, edgefirst-hal; see ``peers.py``) on the same raw outputs.

An fp32 ONNX model and an int8 TFLite model, over original image sizes (640x480, 1920x1080, 4000x3000)
and detection counts (max_det 1, 10, 100, 300 at conf 0.001), with mask agreement, memory and the
memory floor (issue 3). Run it in the peer environment (``../shared/docs/PEERS.md``)::

    PYTHONPATH=../shared/tools/reference-env YOLO_OFFLINE=1 YOLO_CONFIG_DIR=$(mktemp -d) \\
        EDGEFIRST_DISABLE_GL=1 ../.peer-venv/bin/python benchmarks/sweep.py \\
        --json benchmarks/results/sweep.json --plot-dir benchmarks/results

Without the peers installed it measures edgeseg alone. (Until December 2026 this was
``benchmarks/postprocess.py --sweep``; the results in RESULTS.md name the command they came from.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import edgeseg
from edgeseg._core import Letterbox
from edgeseg.heads import PostprocessOptions
from edgeseg.io import list_images, read_image
from edgeseg.preprocess import make_input
from edgeseg.spec import ModelSpec

from common import box_iou, git_state, versions

PEER_PACKAGES = ("edgeseg", "numpy", "onnxruntime", "ai-edge-litert", "edgefirst-hal", "ultralytics", "torch")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# ---------------------------------------------------------------------------------------------------
# The sweep: edgeseg against its peers over original image sizes and detection counts (issue 3).
# ---------------------------------------------------------------------------------------------------

SWEEP_SIZES = "640x480,1920x1080,4000x3000"  # original image (width x height) before letterboxing
SWEEP_MAX_DETS = "1,10,100,300"
SWEEP_CONF, SWEEP_IOU = 0.001, 0.7
FLOOR_CONF, FLOOR_SIZE = 0.25, (640, 480)  # the memory floor is measured at conf 0.25 on 640x480 images
FLOOR_TARGET = 2.0  # decode within 2x of one read of the class-score block
MEMORY_TARGET_MB = 200.0  # peak memory of the postprocess above the model's own (300 masks, 4000x3000)
# Two tools "produce the same masks" at a point when (over the images compared) at least this fraction of
# the detections of the tool with more of them are matched (same class, box IoU > 0.5) ...
SAME_MATCHED = 0.99
# ... and the mean mask IoU of the matched pairs is at least this (peers.py's own acceptance bar).
SAME_MASK_IOU = 0.95
PEERS = ("edgefirst-hal", "ultralytics")
TOOLS = ("edgeseg", *PEERS)
LABELS = {"edgeseg": "edgeseg", "edgefirst-hal": "edgefirst-hal", "ultralytics": "Ultralytics"}

Placed = tuple[int, int, np.ndarray]  # x0, y0 and a bool (h, w) crop of a mask in image pixels


@dataclass
class _Run:
    """One image's raw outputs, as edgeseg's head and the peers receive them."""

    image: str
    image_hw: tuple[int, int]
    outputs: list[np.ndarray]
    letterbox: Letterbox


@dataclass
class _Kind:
    """One kind of raw outputs: a model and how its outputs are laid out and quantized."""

    name: str  # "fp32" or "int8"
    path: Path
    model: edgeseg.Model

    @property
    def spec(self) -> ModelSpec:
        """The model's spec."""
        return self.model.spec

    def det(self, run: _Run) -> np.ndarray:
        """The detections output (1, 4 + nc + nm, anchors) of ``run``."""
        return run.outputs[self.spec.layout.detections_output]

    def protos(self, run: _Run) -> np.ndarray:
        """The prototypes output of ``run``, NCHW or NHWC as the model gives it."""
        return run.outputs[self.spec.layout.prototypes_output]

    @property
    def quant(self) -> dict[str, tuple[float, int]] | None:
        """``{"det": (scale, zero_point), "protos": ...}`` for integer outputs (the peers' convention), else None."""
        det, protos = (
            self.spec.outputs[self.spec.layout.detections_output],
            self.spec.outputs[self.spec.layout.prototypes_output],
        )
        if det.scale is None:
            return None
        return {"det": (det.scale, int(det.zero_point)), "protos": (protos.scale, int(protos.zero_point))}


def _parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)`` (width, height)."""
    w, h = text.lower().split("x")
    return int(w), int(h)


def _size_name(size: tuple[int, int]) -> str:
    """``(1920, 1080)`` -> ``"1920x1080"``."""
    return f"{size[0]}x{size[1]}"


def _raw_outputs(model: edgeseg.Model, image: np.ndarray) -> tuple[list[np.ndarray], Letterbox]:
    """Letterbox ``image`` into the model's input (its layout, dtype, quantization), run it: the raw outputs."""
    spec = model.spec
    tensor, (lb,) = make_input([image], spec, spec.imgsz, batch=1)
    return model.runtime.run({spec.input.name: tensor}), lb


def _load_runs(kind: _Kind, paths: list[Path], size: tuple[int, int]) -> list[_Run]:
    """Raw outputs of every image resized (``cv2.resize``) to ``size`` = (width, height) before letterboxing."""
    import cv2
    from tqdm import tqdm

    runs = []
    for path in tqdm(paths, desc=f"{kind.name} {_size_name(size)} inference", unit="img", leave=False):
        image = cv2.resize(read_image(path), size, interpolation=cv2.INTER_LINEAR)
        outputs, lb = _raw_outputs(kind.model, image)
        runs.append(_Run(path.stem, image.shape[:2], outputs, lb))
    return runs


def _measure(fn: Callable[[], Any], repeats: int, cap_s: float) -> tuple[Any, float, int]:
    """``(result, median ms, timed calls)`` of ``fn()``: an untimed first call, then up to ``repeats`` timed ones.

    Repeats stop once they have taken ``cap_s`` seconds together (at least one is always made). A first
    call that alone takes ``cap_s`` or more is timed instead (caches cannot matter at that scale).
    """
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    if first >= cap_s:
        return result, first * 1e3, 1
    times: list[float] = []
    while len(times) < max(repeats, 1) and sum(times) < cap_s:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return result, statistics.median(times) * 1e3, len(times)


def _postprocessors(kind: _Kind, tools: list[str]) -> dict[str, Callable[[_Run, float, float, int], Any]]:
    """The timed call of each tool: ``call(run, conf, iou, max_det)`` on the raw outputs of ``run``.

    edgeseg: ``model.head(outputs, 0, letterbox, PostprocessOptions(...))``, exactly what ``Model.__call__``
    runs after inference. edgefirst-hal: ``EdgefirstPost`` without its pre-NMS top-k (so it keeps the same
    candidates). Ultralytics: ``UltralyticsPost`` (one torch thread).
    """
    spec, head = kind.spec, kind.model.head
    calls: dict[str, Callable[[_Run, float, float, int], Any]] = {
        "edgeseg": lambda run, conf, iou, max_det: head(
            run.outputs, 0, run.letterbox, PostprocessOptions(conf=conf, iou=iou, max_det=max_det)
        )
    }
    if "edgefirst-hal" in tools:
        from peers import EdgefirstPost

        hal = EdgefirstPost(spec.num_classes, spec.imgsz, quant=kind.quant, pre_nms_top_k=0)
        calls["edgefirst-hal"] = lambda run, conf, iou, max_det: hal(
            kind.det(run), kind.protos(run), run.image_hw, conf, iou, max_det
        )
    if "ultralytics" in tools:
        from peers import UltralyticsPost

        ul = UltralyticsPost(spec.num_classes, spec.imgsz, quant=kind.quant, threads=1)
        calls["ultralytics"] = lambda run, conf, iou, max_det: ul(
            kind.det(run), kind.protos(run), run.image_hw, conf, iou, max_det
        )
    return calls


def _normalize(tool: str, out: Any, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[Placed]]:
    """``(boxes, class ids, masks as placed crops)`` of one tool's output, for comparing them (untimed)."""
    if tool == "edgeseg":
        crops = [(int(x0), int(y0), out.masks[i].astype(bool)) for i, (x0, y0, _, _) in enumerate(out.masks.rects)]
        return out.boxes, out.class_ids, crops
    boxes, _, classes, masks = out
    if tool == "ultralytics":  # full-image (K, H, W) bool masks
        return boxes, classes, [(0, 0, m) for m in masks]
    # edgefirst-hal: box-sized uint8 tiles, placed where peers.to_dense places them (rounded box corner).
    h, w = image_hw
    placed = []
    for box, tile in zip(boxes, masks):
        th, tw = tile.shape[:2]
        x0 = min(max(int(np.floor(float(box[0]) + 0.5)), 0), max(w - tw, 0))
        y0 = min(max(int(np.floor(float(box[1]) + 0.5)), 0), max(h - th, 0))
        placed.append((x0, y0, tile[: h - y0, : w - x0, 0] > 127))
    return boxes, classes, placed


def _mask_iou(a: Placed, b: Placed) -> float:
    """IoU of two masks given as placed crops (pixels outside a crop are 0)."""
    (ax, ay, am), (bx, by, bm) = a, b
    x0, y0 = max(ax, bx), max(ay, by)
    x1, y1 = min(ax + am.shape[1], bx + bm.shape[1]), min(ay + am.shape[0], by + bm.shape[0])
    inter = 0
    if x1 > x0 and y1 > y0:
        both = am[y0 - ay : y1 - ay, x0 - ax : x1 - ax] & bm[y0 - by : y1 - by, x0 - bx : x1 - bx]
        inter = int(np.count_nonzero(both))
    union = int(np.count_nonzero(am)) + int(np.count_nonzero(bm)) - inter
    return inter / union if union else 1.0


def _compare(ref: tuple, other: tuple) -> list[float]:
    """Mask IoUs of the detections of ``other`` matched to ``ref`` (greedy, same class, box IoU > 0.5)."""
    (ref_boxes, ref_classes, ref_masks), (boxes, classes, masks) = ref, other
    if not len(ref_boxes) or not len(boxes):
        return []
    ious = box_iou(ref_boxes, boxes)
    ious[np.asarray(ref_classes, np.int64)[:, None] != np.asarray(classes, np.int64)[None, :]] = -1
    out = []
    while ious.size and ious.max() > 0.5:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        ious[i, :], ious[:, j] = -1, -1
        out.append(_mask_iou(ref_masks[i], masks[j]))
    return out


def _ultralytics_skipped(max_det: int, size: tuple[int, int], limit: float) -> bool:
    """Whether Ultralytics is skipped: it makes ``max_det`` full-image float32 masks (4 bytes x N x H x W)."""
    return max_det * size[0] * size[1] > limit


def _sweep_point(
    kind: _Kind,
    runs: list[_Run],
    size: tuple[int, int],
    max_det: int,
    calls: dict[str, Callable],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Time every tool on every image at one (outputs, image size, max_det) point and compare their masks."""
    from tqdm import tqdm

    tools = [t for t in calls if not (t == "ultralytics" and _ultralytics_skipped(max_det, size, args.ul_limit))]
    ms: dict[str, list[float]] = {t: [] for t in tools}
    dets: dict[str, list[int]] = {t: [] for t in tools}
    timed: dict[str, list[int]] = {t: [] for t in tools}
    mask_bytes: list[int] = []
    agree = {t: {"images": 0, "counts_equal": 0, "edgeseg": 0, "peer": 0, "ious": []} for t in tools[1:]}
    n_compare = args.iou_images or len(runs)
    desc = f"{kind.name} {_size_name(size)} max_det {max_det}"
    for index, run in enumerate(tqdm(runs, desc=desc, unit="img", leave=False)):
        outs = {}
        for tool in tools:
            call = calls[tool]
            out, t_ms, n = _measure(
                lambda c=call, r=run: c(r, SWEEP_CONF, SWEEP_IOU, max_det), args.repeats, args.time_cap
            )
            ms[tool].append(t_ms)
            timed[tool].append(n)
            outs[tool] = out
            dets[tool].append(len(out.scores) if tool == "edgeseg" else len(out[0]))
        mask_bytes.append(outs["edgeseg"].masks.nbytes)
        if index < n_compare:
            ref = _normalize("edgeseg", outs["edgeseg"], run.image_hw)
            for peer, a in agree.items():
                n_es, n_peer = dets["edgeseg"][-1], dets[peer][-1]
                a["images"] += 1
                a["counts_equal"] += n_es == n_peer
                a["edgeseg"] += n_es
                a["peer"] += n_peer
                a["ious"] += _compare(ref, _normalize(peer, outs[peer], run.image_hw))
        del outs

    point: dict[str, Any] = {
        "outputs": kind.name,
        "model": kind.path.name,
        "size": _size_name(size),
        "width": size[0],
        "height": size[1],
        "max_det": max_det,
        "conf": SWEEP_CONF,
        "iou": SWEEP_IOU,
        "images": len(runs),
        "tools": {},
        "agreement": {},
        "speedup": {},
        "targets": {},
    }
    for tool in TOOLS:
        if tool not in calls:
            continue
        if tool not in tools:
            point["tools"][tool] = {"skipped": f"max_det x H x W > {args.ul_limit:.3g} (full-image float masks)"}
            continue
        point["tools"][tool] = {
            "ms_mean": float(np.mean(ms[tool])),
            "ms_median": float(np.median(ms[tool])),
            "ms_per_image": [round(v, 4) for v in ms[tool]],
            "timed_calls_mean": float(np.mean(timed[tool])),
            "detections_mean": float(np.mean(dets[tool])),
            "detections_per_image": dets[tool],
        }
    point["tools"]["edgeseg"]["mask_bytes_mean"] = float(np.mean(mask_bytes))
    point["tools"]["edgeseg"]["mask_bytes_max"] = int(np.max(mask_bytes))
    point["tools"]["edgeseg"]["mask_bytes_max_image"] = runs[int(np.argmax(mask_bytes))].image
    es_ms = point["tools"]["edgeseg"]["ms_mean"]
    for peer, a in agree.items():
        ious, most = a["ious"], max(a["edgeseg"], a["peer"])
        matched_frac = len(ious) / most if most else 1.0
        mean_iou = float(np.mean(ious)) if ious else (1.0 if not most else 0.0)
        same = matched_frac >= SAME_MATCHED and mean_iou >= SAME_MASK_IOU
        point["agreement"][peer] = {
            "images": a["images"],
            "counts_equal_images": a["counts_equal"],
            "detections_edgeseg": a["edgeseg"],
            "detections_peer": a["peer"],
            "matched": len(ious),
            "matched_fraction": matched_frac,
            "mask_iou_mean": mean_iou,
            "mask_iou_min": float(np.min(ious)) if ious else None,
            "same_masks": bool(same),
        }
        speedup = point["tools"][peer]["ms_mean"] / es_ms
        point["speedup"][peer] = speedup
        if peer == "edgefirst-hal":
            need, applies = 1.0, same  # faster wherever both produce the same masks
        else:
            need, applies = (20.0 if max_det >= 100 else 5.0), True
        met = speedup > need if peer == "edgefirst-hal" else speedup >= need
        point["targets"][peer] = {"speedup_at_least": need, "applies": bool(applies), "met": bool(met)}
    return point


def _floor(kind: _Kind, runs: list[_Run], args: argparse.Namespace) -> dict[str, Any]:
    """The memory floor at conf 0.25: one numpy ``max`` over the class-score block, against edgeseg's
    decode alone (``_core.decode_yolo`` with the head's arguments) and its whole postprocess."""
    from edgeseg import _core

    spec, head = kind.spec, kind.model.head
    nc = spec.num_classes
    options = PostprocessOptions(conf=FLOOR_CONF)
    axis = 1 if spec.layout.detections_anchor_major else 0
    floor, decode, post = [], [], []
    for run in runs:
        det = kind.det(run)
        block = det[0, :, 4 : 4 + nc] if spec.layout.detections_anchor_major else det[0, 4 : 4 + nc]
        pred = det[0].T if spec.layout.detections_anchor_major else det[0]
        lb = run.letterbox
        floor.append(_measure(lambda b=block: b.max(axis), args.repeats, args.time_cap)[1])
        decode.append(
            _measure(
                lambda p=pred, b=lb: _core.decode_yolo(
                    p, nc, options.conf, options.iou, options.max_det, options.pre_nms_topk, options.agnostic,
                    options.class_allowed, quant=head._det_quant, box_scale=head._box_scale(b),
                ),
                args.repeats,
                args.time_cap,
            )[1]
        )  # fmt: skip
        post.append(_measure(lambda r=run: head(r.outputs, 0, r.letterbox, options), args.repeats, args.time_cap)[1])
    block = block.T if spec.layout.detections_anchor_major else block  # classes x anchors, as described
    row = {
        "outputs": kind.name,
        "model": kind.path.name,
        "size": _size_name(FLOOR_SIZE),
        "conf": FLOOR_CONF,
        "images": len(runs),
        "class_block": f"{block.shape[0]}x{block.shape[1]} {block.dtype} ({block.nbytes / 1e6:.2f} MB)",
        "floor_ms": float(np.mean(floor)),
        "decode_ms": float(np.mean(decode)),
        "postprocess_ms": float(np.mean(post)),
    }
    row["decode_ratio"] = row["decode_ms"] / row["floor_ms"]
    row["postprocess_ratio"] = row["postprocess_ms"] / row["floor_ms"]
    row["target_ratio"] = FLOOR_TARGET
    row["met"] = bool(row["decode_ratio"] <= FLOOR_TARGET)
    return row


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB; None where there is no ``/proc``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**10
    except (OSError, ValueError):
        pass
    return None


def _peak_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` where the kernel has it: the same high-water mark as ``ru_maxrss`` but of this program only
    (after ``fork`` + ``exec``, ``ru_maxrss`` also covers the parent's memory at the fork), and resettable.
    Elsewhere ``ru_maxrss`` (KB on Linux, bytes on macOS).
    """
    import resource

    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _reset_peak() -> bool:
    """Reset the peak resident memory (``VmHWM``) to the current one (Linux >= 4.0); whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _memory_probe(job: dict[str, Any]) -> int:
    """Run in a fresh process: load the model, run inference on one image, then one postprocess of ``job["tool"]``.

    Prints one JSON line with the peak resident memory after model load and inference (the model's own),
    the resident memory just before the postprocess, and the peak during the postprocess: the peak is reset
    to the current memory right before the call where the kernel allows it, so the increase is the
    postprocess's own even when the model's peak was higher.
    """
    import gc

    import cv2

    tool = job["tool"]
    if tool != "edgeseg":
        import peers  # noqa: F401  (sets the peers' environment before they are imported)
    model = edgeseg.load(job["model"], threads=job.get("threads"))
    kind = _Kind(job["kind"], Path(job["model"]), model)
    image = cv2.resize(read_image(job["image"]), (job["width"], job["height"]), interpolation=cv2.INTER_LINEAR)
    outputs, lb = _raw_outputs(model, image)
    run = _Run(Path(job["image"]).stem, image.shape[:2], outputs, lb)
    call = _postprocessors(kind, [tool])[tool]  # peers' set-up (imports, decoders) belongs to the model's side
    del image
    gc.collect()
    model_peak = _peak_mb()
    reset = _reset_peak()
    rss = _status_mb("VmRSS")
    t = time.perf_counter()
    out = call(run, job["conf"], job["iou"], job["max_det"])
    elapsed = (time.perf_counter() - t) * 1e3
    peak = _peak_mb()
    if tool == "edgeseg":
        n, result_mb = len(out.scores), out.masks.nbytes / 2**20
    elif tool == "edgefirst-hal":
        n, result_mb = len(out[0]), sum(m.nbytes for m in out[3]) / 2**20
    else:
        n, result_mb = len(out[0]), out[3].nbytes / 2**20
    base = rss if reset and rss is not None else model_peak
    report = {
        "detections": n,
        "model_peak_mb": model_peak,
        "rss_before_mb": rss,
        "peak_after_mb": peak,
        "peak_reset": reset,
        "delta_mb": peak - base,
        "process_peak_increase_mb": max(peak - model_peak, 0.0),
        "result_mb": result_mb,
        "ms": elapsed,
    }
    print(json.dumps(report))
    return 0


def _memory(
    kind: _Kind, size: tuple[int, int], max_det: int, image: Path, tools: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Peak-RSS increase of one postprocess per tool, each in a fresh subprocess (see ``_memory_probe``)."""
    import subprocess

    rows = []
    for tool in tools:
        row: dict[str, Any] = {
            "outputs": kind.name,
            "model": kind.path.name,
            "size": _size_name(size),
            "max_det": max_det,
            "tool": tool,
            "image": image.stem,
            "target_mb": MEMORY_TARGET_MB,
        }
        if tool == "ultralytics" and _ultralytics_skipped(max_det, size, args.ul_limit):
            need = 4 * max_det * size[0] * size[1] / 2**30
            row["skipped"] = f"needs over {need:.1f} GiB of full-image float32 masks"
            rows.append(row)
            continue
        job = {
            "tool": tool,
            "kind": kind.name,
            "model": str(kind.path),
            "image": str(image),
            "width": size[0],
            "height": size[1],
            "max_det": max_det,
            "conf": SWEEP_CONF,
            "iou": SWEEP_IOU,
            "threads": args.threads,
        }
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-probe", json.dumps(job)],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            row["error"] = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        else:
            row.update(json.loads(lines[-1]))
            row["met"] = bool(row["delta_mb"] < MEMORY_TARGET_MB)  # the target is edgeseg's; peers for scale
        rows.append(row)
    return rows


def _fmt_ms(v: float) -> str:
    """Milliseconds with 3 significant-ish digits."""
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _sweep_markdown(result: dict[str, Any]) -> str:
    """The Markdown tables of a sweep (what it prints and RESULTS.md shows)."""
    meta = result["meta"]
    lines = [
        f"{meta['images']} coco-val-mini images, each resized to the original size, conf {SWEEP_CONF}, iou "
        f"{SWEEP_IOU}, max_det = N; {meta['machine']}, one thread per tool; mean over images of the per-image "
        f"median of up to {meta['repeats']} repeats (repeats of one call stop after {meta['time_cap_s']} s).",
        "",
        "| outputs | image | N | detections/img edgeseg / hal / Ultralytics | edgeseg ms | edgefirst-hal ms "
        "| Ultralytics ms | vs hal | vs Ultralytics | same masks as hal (counts equal, matched, IoU) "
        "| same masks as Ultralytics | edgeseg masks MB (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result["points"]:
        tools = p["tools"]

        def cell(tool: str, key: str, fmt: Callable[[float], str], t: dict = tools) -> str:
            v = t.get(tool, {}).get(key)
            return "–" if v is None else fmt(v)

        dets = " / ".join(cell(t, "detections_mean", lambda v: f"{v:.1f}") for t in TOOLS)
        speed = []
        for peer in PEERS:
            if peer not in p["speedup"]:
                speed.append("–")
                continue
            tg = p["targets"][peer]
            if not tg["applies"]:
                mark = "masks differ"
            else:
                mark = f"{'ok' if tg['met'] else 'MISSED'} (≥{tg['speedup_at_least']:g}×)"
            speed.append(f"{p['speedup'][peer]:.1f}× {mark}")
        same = []
        for peer in PEERS:
            a = p["agreement"].get(peer)
            if a is None:
                same.append("–")
                continue
            same.append(
                f"{'yes' if a['same_masks'] else 'NO'} ({a['counts_equal_images']}/{a['images']}, "
                f"{a['matched']}/{max(a['detections_edgeseg'], a['detections_peer'])}, {a['mask_iou_mean']:.4f})"
            )
        lines.append(
            f"| {p['outputs']} | {p['size']} | {p['max_det']} | {dets} | {cell('edgeseg', 'ms_mean', _fmt_ms)} "
            f"| {cell('edgefirst-hal', 'ms_mean', _fmt_ms)} | {cell('ultralytics', 'ms_mean', _fmt_ms)} "
            f"| {speed[0]} | {speed[1]} | {same[0]} | {same[1]} "
            f"| {tools['edgeseg']['mask_bytes_max'] / 2**20:.2f} |"
        )
    if result["floor"]:
        lines += [
            "",
            f"Memory floor (conf {FLOOR_CONF}, {_size_name(FLOOR_SIZE)}): a numpy `max` over the class-score block "
            "against edgeseg's decode (`_core.decode_yolo`, threshold + NMS) and its whole postprocess.",
            "",
            "| outputs | class-score block | numpy max ms | decode ms | postprocess ms | decode / floor "
            "| postprocess / floor | target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in result["floor"]:
            lines.append(
                f"| {f['outputs']} | {f['class_block']} | {f['floor_ms']:.4f} | {f['decode_ms']:.4f} "
                f"| {f['postprocess_ms']:.4f} | {f['decode_ratio']:.2f} | {f['postprocess_ratio']:.2f} "
                f"| decode <= {f['target_ratio']:g}× {'ok' if f['met'] else 'MISSED'} |"
            )
    if result["memory"]:
        lines += [
            "",
            "Peak memory of one postprocess, each in a fresh process: load the model, run inference on the "
            "point's worst image (by edgeseg's mask memory), reset the peak RSS to the current RSS "
            "(`/proc/self/clear_refs`), postprocess once, read the peak (`VmHWM`, i.e. ru_maxrss of this program).",
            "",
            "| outputs | image | N | tool | detections | model's own peak MB | RSS before MB | postprocess peak "
            "above it MB | process peak increase MB | result MB | target < 200 MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in result["memory"]:
            head = f"| {m['outputs']} | {m['size']} | {m['max_det']} | {LABELS[m['tool']]} "
            if "skipped" in m or "error" in m:
                lines.append(head + f"| {m.get('skipped') or m.get('error')} | | | | | | |")
                continue
            rss = "–" if m["rss_before_mb"] is None else f"{m['rss_before_mb']:.0f}"
            target = ("ok" if m["met"] else "MISSED") if m["tool"] == "edgeseg" else "(peer)"
            lines.append(
                head + f"| {m['detections']} | {m['model_peak_mb']:.0f} | {rss} | {m['delta_mb']:.1f} "
                f"| {m['process_peak_increase_mb']:.1f} | {m['result_mb']:.1f} | {target} |"
            )
    return "\n".join(lines)


def _plot(result: dict[str, Any], plot_dir: Path) -> list[Path]:
    """One PNG per kind of outputs: time vs max_det (log-log), one panel per image size, one line per tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    written = []
    styles = {"edgeseg": "o-", "edgefirst-hal": "s--", "ultralytics": "^:"}
    for kind in dict.fromkeys(p["outputs"] for p in result["points"]):
        points = [p for p in result["points"] if p["outputs"] == kind]
        sizes = list(dict.fromkeys(p["size"] for p in points))
        fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), sharey=True, squeeze=False)
        for ax, size in zip(axes[0], sizes):
            at = [p for p in points if p["size"] == size]
            for tool in TOOLS:
                xy = [(p["max_det"], p["tools"][tool]["ms_mean"]) for p in at if "ms_mean" in p["tools"].get(tool, {})]
                if not xy:
                    continue
                (line,) = ax.plot(*zip(*xy), styles[tool], label=LABELS[tool])
                differ = [
                    (p["max_det"], p["tools"][tool]["ms_mean"])
                    for p in at
                    if tool in p["agreement"] and not p["agreement"][tool]["same_masks"]
                ]
                if differ:  # hollow markers: this peer's masks differ from edgeseg's at these points
                    ax.plot(*zip(*differ), styles[tool][0], mfc="white", color=line.get_color(), zorder=3,
                            label=f"{LABELS[tool]}: masks differ")  # fmt: skip
                if len(xy) < len(at):
                    ax.annotate(f"{LABELS[tool]}: N > {max(x for x, _ in xy)} skipped (memory)", (0.03, 0.03),
                                xycoords="axes fraction", fontsize=8, color=line.get_color())  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks([p["max_det"] for p in at], [str(p["max_det"]) for p in at])
            ax.set_title(f"{size}")
            ax.set_xlabel("max_det (conf 0.001)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("postprocess ms per image (1 thread)")
        handles = {h.get_label(): h for ax in axes[0] for h in ax.get_lines()}
        axes[0][0].legend(list(handles.values()), list(handles), fontsize=8)
        model = points[0]["model"]
        fig.suptitle(f"{kind} outputs ({model}): postprocess time vs detections")
        fig.tight_layout()
        path = plot_dir / f"sweep_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep options."""
    g = parser.add_argument_group("sweep (run in the peer environment to include the peers)")
    g.add_argument("--fp32-model", type=Path, default=SHARED / "models" / "yolov8n-seg.onnx")
    g.add_argument("--int8-model", type=Path, default=SHARED / "models" / "yolo11n-seg-int8.tflite")
    g.add_argument("--outputs", default="fp32,int8", help="kinds of outputs to sweep (default: fp32,int8)")
    g.add_argument("--sizes", default=SWEEP_SIZES, help=f"original image sizes WxH (default: {SWEEP_SIZES})")
    g.add_argument("--max-dets", default=SWEEP_MAX_DETS, help=f"max_det values (default: {SWEEP_MAX_DETS})")
    g.add_argument("--peers", default=",".join(PEERS), help="peers to include when importable (default: both)")
    g.add_argument(
        "--time-cap", type=float, default=1.0, help="stop repeating one call on one image after this many seconds"
    )
    g.add_argument(
        "--skip-ultralytics-above",
        dest="ul_limit",
        type=float,
        default=7e8,
        metavar="PIXELS",
        help="skip Ultralytics where max_det x H x W exceeds this (its full-image float masks; default 7e8)",
    )
    g.add_argument("--iou-images", type=int, default=0, help="compare masks on the first K images (default: all)")
    g.add_argument(
        "--memory-points",
        default="4000x3000:300,1920x1080:300",
        help="WxH:N points for the subprocess peak-memory measurement ('' for none)",
    )
    g.add_argument("--plot-dir", type=Path, default=None, help="write sweep_fp32.png and sweep_int8.png here")
    g.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)


def sweep(args: argparse.Namespace) -> int:
    """edgeseg against edgefirst-hal and Ultralytics on the same raw outputs (see the module doc)."""
    import peers

    started = time.perf_counter()
    git = git_state(ROOT)  # now: the checkout may change while the sweep runs
    repeats = args.repeats or 3
    args.repeats = repeats
    limit = 20 if args.limit is None else args.limit
    paths = sorted(list_images(args.images))[: limit or None]
    sizes = [_parse_size(s) for s in args.sizes.split(",") if s]
    max_dets = [int(n) for n in args.max_dets.split(",") if n]
    have = peers.available()
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    tools = ["edgeseg", *[p for p in PEERS if p in wanted and have.get(p)]]
    for p in wanted:
        if not have.get(p):
            print(f"{p} is not importable here: left out (run in the peer environment, see PEERS.md)", file=sys.stderr)
    memory_points = []
    for item in filter(None, args.memory_points.split(",")):
        size_text, n_text = item.split(":")
        memory_points.append((_parse_size(size_text), int(n_text)))

    kinds = []
    for name in filter(None, args.outputs.split(",")):
        path = {"fp32": args.fp32_model, "int8": args.int8_model}[name]
        try:
            kinds.append(_Kind(name, path, edgeseg.load(path, threads=args.threads)))
        except edgeseg.ModelError as exc:
            print(f"{name}: {exc}: left out", file=sys.stderr)

    result: dict[str, Any] = {"points": [], "floor": [], "memory": []}
    for kind in kinds:
        calls = _postprocessors(kind, tools)
        # One throwaway call per tool on a synthetic run: imports, thread pools and decoders are set up
        # before anything is timed.
        warm = _load_runs(kind, paths[:1], sizes[0])[0]
        for call in calls.values():
            call(warm, SWEEP_CONF, SWEEP_IOU, max(max_dets))
        for size in sizes:
            runs = _load_runs(kind, paths, size)
            if size == FLOOR_SIZE:
                result["floor"].append(_floor(kind, runs, args))
            for max_det in max_dets:
                point = _sweep_point(kind, runs, size, max_det, calls, args)
                result["points"].append(point)
                es = point["tools"]["edgeseg"]
                summary = ", ".join(
                    f"{t} {point['tools'][t]['ms_mean']:.2f} ms" for t in calls if "ms_mean" in point["tools"][t]
                )
                print(f"{kind.name} {_size_name(size)} N={max_det}: {es['detections_mean']:.1f} det/img, {summary}",
                      file=sys.stderr, flush=True)  # fmt: skip
            del runs
        if FLOOR_SIZE not in sizes:
            result["floor"].append(_floor(kind, _load_runs(kind, paths, FLOOR_SIZE), args))
        for size, max_det in memory_points:
            point = next((p for p in result["points"] if p["outputs"] == kind.name and p["size"] == _size_name(size)
                          and p["max_det"] == max_det), None)  # fmt: skip
            worst = point["tools"]["edgeseg"]["mask_bytes_max_image"] if point else paths[0].stem
            image = next(p for p in paths if p.stem == worst)
            result["memory"] += _memory(kind, size, max_det, image, tools, args)

    try:
        import torch

        torch_threads = torch.get_num_threads() if "ultralytics" in tools else None
    except ImportError:
        torch_threads = None
    result["meta"] = {
        "images": len(paths),
        "image_names": [p.name for p in paths],
        "sizes": [_size_name(s) for s in sizes],
        "max_dets": max_dets,
        "conf": SWEEP_CONF,
        "iou": SWEEP_IOU,
        "repeats": repeats,
        "time_cap_s": args.time_cap,
        "skip_ultralytics_above": args.ul_limit,
        "iou_images": args.iou_images or len(paths),
        "same_masks_rule": f"matched >= {SAME_MATCHED:.0%} of the larger detection count and mean mask IoU >= "
        f"{SAME_MASK_IOU}",
        "tools": tools,
        "models": {k.name: k.path.name for k in kinds},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "versions": versions(PEER_PACKAGES),
        "git": git,
        "threads": {"torch": torch_threads, "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS")},
        "command": " ".join(sys.argv),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print("\n" + _sweep_markdown(result))
    if args.plot_dir:
        for path in _plot(result, args.plot_dir):
            print(f"wrote {path}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    print(f"sweep took {result['meta']['wall_s']:.0f} s", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    parser.add_argument("--limit", type=int, default=20, help="use the first N images (default 20; 0 = all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per image and stage (median; default 3)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: one per core)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    _add_sweep_arguments(parser)
    args = parser.parse_args()
    if args.memory_probe:
        return _memory_probe(json.loads(args.memory_probe))
    return sweep(args)


if __name__ == "__main__":
    sys.exit(main())
