"""NPU split heads (issue 11): postprocess of the full-int8 split layouts against inference and the vendor demo.

1. The split models: ``edgeseg quantize --split-head LAYOUT`` of ../shared/models/yolov8n-seg.onnx, calibrated on
   ../shared/data/coco128-train/images (disjoint from the images timed), every output uint8 with its own scale.
   Written once into ``--cache`` (a temp folder, not part of the repository) and reused.
2. For every coco-val-mini image, each model runs once; then, alternating within each repeat, on those same raw
   outputs:
   (a) the fused FP32 model's ONNX Runtime inference (``model.infer``), default threads;
   (b) edgeseg's postprocess of each int8 split layout at conf 0.25 (``model.postprocess``: integer-domain
       decode, NMS, masks at source resolution, box-cropped and bit-packed), one thread;
   (c) a numpy transcription of the vendor demo postprocess (benchmarks/reference_rknn_seg.py: Rockchip
       rknn_model_zoo yolov8_seg ``post_process`` + ``get_real_box``/``get_real_seg``), dequantizing the raw
       outputs first as the RKNN Python API does. Hailo's outputs go through the same transcription, reordered
       by shape and transposed NHWC -> NCHW (its own demo is the same algorithm: DFL on every cell, NMS, masks);
   and, for context, edgeseg's postprocess of the fused FP32 model's outputs.
   (c) runs with edgeseg's settings (conf 0.25, IoU 0.7, max 300) so both return the same detections; the demo
   ships IoU 0.45 (``--ref-iou 0.45``), which changes its cost very little.
3. Agreement of (b) and (c): same detection count per image, box IoU and mask IoU of matched detections.
4. Reported: median over images of the per-image median ms (wall clock), (b)/(a) in percent (target <= 2%) and
   the (c)/(b) speed-up (median of per-image ratios; target >= 10x).

    .venv/bin/python benchmarks/split_heads.py --json benchmarks/results/split_heads.json
    .venv/bin/python benchmarks/split_heads.py --limit 10 --repeats 3 --layouts rknn hailo     # quicker
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

import edgeseg
import reference_rknn_seg as vendor
from edgeseg.io import list_images, read_image

from common import box_iou, git_state, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FUSED = SHARED / "models" / "yolov8n-seg.onnx"
LAYOUTS = ("rknn", "hailo", "qai", "edgefirst")
VENDOR = {"rknn": vendor.rknn_demo, "hailo": vendor.hailo_demo}  # layouts with a vendor transcription
TARGET_RATIO = 0.02  # postprocess <= 2% of the fused model's inference
TARGET_SPEEDUP = 10.0  # >= 10x the vendor demo transcription


def split_models(cache: Path, layouts: list[str], calib: Path, calib_size: int) -> dict[str, Path]:
    from edgeseg.quantize import quantize

    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    for layout in layouts:
        out = cache / f"{layout}-int8-c{calib_size}.onnx"
        if not out.exists():
            t = time.perf_counter()
            quantize(FUSED, calib, out, calib_size=calib_size, split_head=layout, progress=False)
            print(f"quantized {layout} in {time.perf_counter() - t:.0f} s -> {out}")
        paths[layout] = out
    return paths


def vendor_letterbox(lb) -> tuple[float, float, float]:
    """(ratio, dw, dh) of edgeseg's letterbox, as the demo's helper records them."""
    return min(lb.new_h / lb.src_h, lb.new_w / lb.src_w), float(lb.pad_left), float(lb.pad_top)


def agreement(result, ref) -> dict:
    """Detections of edgeseg (b) against the vendor transcription (c) on one image: counts, and box / mask IoU of
    the pairs matched greedily (same class, best box IoU)."""
    boxes, classes, _, masks = ref
    out = {"ours": len(result.boxes), "ref": len(boxes), "box_ious": [], "mask_ious": []}
    if not len(result.boxes) or not len(boxes):
        return out
    ious = box_iou(result.boxes, boxes)
    ious[result.class_ids[:, None] != classes[None, :]] = 0
    dense = result.masks.dense()
    used = set()
    for i in range(len(result.boxes)):
        j = int(np.argmax(ious[i]))
        if ious[i, j] <= 0 or j in used:
            continue
        used.add(j)
        out["box_ious"].append(float(ious[i, j]))
        a, b = dense[i], masks[j].astype(bool)
        union = np.logical_or(a, b).sum()
        out["mask_ious"].append(float(np.logical_and(a, b).sum() / union) if union else 1.0)
    return out


def timed(fn) -> tuple[float, float]:
    """Wall and CPU milliseconds of ``fn()`` (CPU: every thread of this process, so ONNX Runtime's pool counts;
    other processes on the shared machine do not)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    parser.add_argument("--calib", type=Path, default=SHARED / "data" / "coco128-train" / "images")
    parser.add_argument("--calib-size", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edgeseg-split-heads",
                        help="folder for the quantized split models (made once, reused)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=0, help="use the first N images (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per image (median; default 3)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--ref-iou", type=float, default=None, help="vendor transcription's IoU (default: edgeseg's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    paths = split_models(args.cache, args.layouts, args.calib, args.calib_size)
    fused = edgeseg.load(FUSED)
    models = {layout: edgeseg.load(p) for layout, p in paths.items()}
    fused_opts = fused.options(conf=args.conf)
    opts = {layout: m.options(conf=args.conf) for layout, m in models.items()}
    ref_iou = {layout: m.spec.defaults.iou if args.ref_iou is None else args.ref_iou for layout, m in models.items()}
    quant = {layout: [o.quant for o in m.spec.outputs] for layout, m in models.items()}
    images = list_images(args.images)[: args.limit or None]

    keys = ["infer_fp32", "post_fp32", *(f"post_{k}" for k in args.layouts)]
    keys += [f"vendor_{k}" for k in args.layouts if k in VENDOR]
    med: dict[str, list[float]] = {k: [] for k in keys}
    best: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    dets: dict[str, list[int]] = {k: [] for k in ["fp32", *args.layouts]}
    agree: dict[str, list[dict]] = {k: [] for k in args.layouts if k in VENDOR}
    for n, path in enumerate(images, 1):
        image = read_image(path)
        src_hw = image.shape[:2]
        tensor, lbs = fused.preprocess([image])
        fused_out = fused.infer(tensor)
        calls = {
            "infer_fp32": lambda t=tensor: fused.infer(t),
            "post_fp32": lambda o=fused_out, b=lbs: fused.postprocess(o, b, fused_opts),
        }
        dets["fp32"].append(len(calls["post_fp32"]()[0].boxes))
        for layout, m in models.items():
            t, lb = m.preprocess([image])
            raw = m.infer(t)
            calls[f"post_{layout}"] = lambda o=raw, b=lb, m=m, op=opts[layout]: m.postprocess(o, b, op)
            result = calls[f"post_{layout}"]()[0]
            dets[layout].append(len(result.boxes))
            if layout in VENDOR:
                letterbox = vendor_letterbox(lb[0])
                settings = (args.conf, ref_iou[layout], m.spec.defaults.max_det)
                calls[f"vendor_{layout}"] = partial(VENDOR[layout], raw, quant[layout], letterbox, src_hw, *settings)
                agree[layout].append(agreement(result, calls[f"vendor_{layout}"]()))
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
        for _ in range(args.repeats):  # alternate: every call once per round
            for k in keys:
                samples[k].append(timed(calls[k]))
        for k in keys:
            wall = [w for w, _ in samples[k]]
            med[k].append(statistics.median(wall))
            best[k].append(min(wall))
            cpu[k].append(statistics.median(c for _, c in samples[k]))
        if n % 10 == 0 or n == len(images):
            print(f"{n}/{len(images)} images", file=sys.stderr)

    infer = statistics.median(med["infer_fp32"])
    infer_best, infer_cpu = statistics.median(best["infer_fp32"]), statistics.median(cpu["infer_fp32"])
    rows = []
    for name in ["fp32", *args.layouts]:
        k = f"post_{name}"
        row = {
            "layout": name,
            "model": FUSED.name if name == "fp32" else paths[name].name,
            "detections_mean": round(statistics.mean(dets[name]), 2),
            "postprocess_ms_median": round(statistics.median(med[k]), 3),
            "postprocess_ms_best_median": round(statistics.median(best[k]), 3),
            "postprocess_cpu_ms_median": round(statistics.median(cpu[k]), 3),
            "percent_of_inference": round(100 * statistics.median(med[k]) / infer, 3),
            "percent_of_inference_best": round(100 * statistics.median(best[k]) / infer_best, 3),
        }
        if name != "fp32":
            row["ratio_met"] = statistics.median(med[k]) / infer <= TARGET_RATIO
        if name in VENDOR:
            v = f"vendor_{name}"
            per_image = [r / o for r, o in zip(med[v], med[k])]
            a = agree[name]
            mask_ious = [x for g in a for x in g["mask_ious"]]
            box_ious = [x for g in a for x in g["box_ious"]]
            row |= {
                "vendor_ms_median": round(statistics.median(med[v]), 3),
                "vendor_ms_best_median": round(statistics.median(best[v]), 3),
                "vendor_cpu_ms_median": round(statistics.median(cpu[v]), 3),
                "speedup_best_median": round(statistics.median(r / o for r, o in zip(best[v], best[k])), 1),
                "speedup_cpu_median": round(statistics.median(r / o for r, o in zip(cpu[v], cpu[k])), 1),
                "speedup_median": round(statistics.median(per_image), 1),
                "speedup_min": round(min(per_image), 1),
                "speedup_met": statistics.median(per_image) >= TARGET_SPEEDUP,
                "vendor_iou": ref_iou[name],
                "agree_same_count": round(sum(g["ours"] == g["ref"] for g in a) / len(a), 3),
                "agree_detections": [sum(g["ours"] for g in a), sum(g["ref"] for g in a)],
                "agree_box_iou_mean": round(statistics.mean(box_ious), 4) if box_ious else None,
                "agree_mask_iou_mean": round(statistics.mean(mask_ious), 4) if mask_ious else None,
            }
        rows.append(row)

    print(f"\nyolov8n-seg, {len(images)} coco-val-mini images, conf {args.conf}, {args.repeats} repeats "
          f"(alternating); fused FP32 ONNX Runtime inference: median {infer:.1f} ms, best-of {infer_best:.1f} ms, "
          f"CPU {infer_cpu:.1f} ms\n")  # fmt: skip
    print("| layout | dets/img | edgeseg post ms (best-of, CPU) | % of inference (best-of) "
          "| vendor demo ms (best-of, CPU) | speed-up median (min; best-of; CPU) "
          "| same count | box IoU | mask IoU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        v = (
            f"{r['vendor_ms_median']:.1f} ({r['vendor_ms_best_median']:.1f}, {r['vendor_cpu_ms_median']:.1f}) | "
            f"x{r['speedup_median']} (x{r['speedup_min']}; x{r['speedup_best_median']}; x{r['speedup_cpu_median']}) | "
            f"{r['agree_same_count'] * 100:.0f}% | {r['agree_box_iou_mean']} | {r['agree_mask_iou_mean']}"
            if "vendor_ms_median" in r
            else "– | – | – | – | –"
        )
        label = "fused FP32 (context)" if r["layout"] == "fp32" else f"{r['layout']} int8"
        print(f"| {label} | {r['detections_mean']} | {r['postprocess_ms_median']:.3f} "
              f"({r['postprocess_ms_best_median']:.3f}, {r['postprocess_cpu_ms_median']:.3f}) | "
              f"{r['percent_of_inference']:.2f}% ({r['percent_of_inference_best']:.2f}%) | {v} |")  # fmt: skip

    write_json(
        args.json,
        {
            "benchmark": "split_heads",
            "command": "python benchmarks/split_heads.py " + " ".join(sys.argv[1:]),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "python": platform.python_version(),
                "note": "2-core AMD EPYC VM (AVX2), shared with other work during the run",
            },
            "versions": versions(("edgeseg", "numpy", "onnxruntime", "opencv-python", "opencv-python-headless")),
            "git": git_state(ROOT),
            "images": len(images),
            "repeats": args.repeats,
            "conf": args.conf,
            "calib_size": args.calib_size,
            "infer_fp32_ms_median": round(infer, 3),
            "infer_fp32_ms_best_median": round(infer_best, 3),
            "infer_fp32_cpu_ms_median": round(infer_cpu, 3),
            "targets": {"postprocess_percent_of_inference": TARGET_RATIO * 100, "speedup_vs_vendor": TARGET_SPEEDUP},
            "results": rows,
            "per_image_ms": {k: [round(x, 3) for x in v] for k, v in med.items()},
        },
    )
    ok = all(r.get("ratio_met", True) and r.get("speedup_met", True) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
