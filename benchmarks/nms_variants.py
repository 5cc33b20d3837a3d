"""NMS as a choice: what each suppression does to COCO mask mAP and to postprocess cost, with yolov8n-seg.

1. Accuracy: ``edgeseg.evaluate`` (pycocotools or faster-coco-eval) on coco-val-mini at conf 0.001, once per
   ``nms`` choice (box, fast, matrix, mask): box and mask mAP50-95 / mAP50.
2. Cost: the raw outputs of every image are computed once; ``model.postprocess`` (decode, suppression, masks at
   source resolution) is then timed on them for each choice at conf 0.001 and 0.25: median per image, then
   the median over images.
3. Core against the numpy transcriptions of the official code (tests/reference_nms.py) on the same real
   candidates (every candidate above conf 0.001; masks: the best 300 at prototype resolution): median time
   per image of each, and the speed-up (target >= 10x).

    python benchmarks/nms_variants.py --json benchmarks/results/nms_variants.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

import edgeseg
from edgeseg import _core
from edgeseg.evaluate import evaluate
from edgeseg.io import list_images, read_image
from edgeseg.masks import InstanceMasks

from common import git_state, median_ms, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))
import reference_nms as ref  # noqa: E402  (the transcriptions live with the tests)

KINDS = ("box", "fast", "matrix", "mask")
CONFS = (0.001, 0.25)


def accuracy(model: edgeseg.Model, data: Path) -> dict[str, dict[str, float]]:
    out = {}
    for kind in KINDS:
        report = evaluate(model, data / "images", data / "instances_val2017.json", conf=0.001, nms=kind, progress=False)
        out[kind] = {
            "box_map50_95": round(report.box_map50_95, 4),
            "box_map50": round(report.box_map50, 4),
            "mask_map50_95": round(report.mask_map50_95, 4),
            "mask_map50": round(report.mask_map50, 4),
            "detections": report.detections,
        }
        print(f"{kind:7s} mask mAP50-95 {report.mask_map50_95:.4f} mAP50 {report.mask_map50:.4f}  "
              f"box mAP50-95 {report.box_map50_95:.4f}  ({report.detections} detections)")  # fmt: skip
    return out


def costs(model: edgeseg.Model, images: list[Path], repeats: int) -> tuple[dict, list]:
    """Postprocess median per image for every (nms, conf), and the raw outputs kept for the core comparison."""
    per: dict[str, list[float]] = {f"{k}@{c}": [] for k in KINDS for c in CONFS}
    kept = []
    for path in images:
        image = read_image(path)
        tensor, lbs = model.preprocess([image])
        outputs = model.infer(tensor)
        for kind in KINDS:
            for conf in CONFS:
                run = partial(model.postprocess, outputs, lbs, model.options(conf=conf, nms=kind))
                per[f"{kind}@{conf}"].append(median_ms(run, repeats, True))
        kept.append([o[0].copy() for o in outputs])
    return {k: round(statistics.median(v), 3) for k, v in per.items()}, kept


def _pairs(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    crops: tuple[np.ndarray, np.ndarray, np.ndarray],
    dense: np.ndarray,
    s300: np.ndarray,
    c300: np.ndarray,
) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """(core call, numpy reference call) of each variant on one image's candidates, same settings."""
    return {
        "fast_nms": (
            lambda: _core.fast_nms(boxes, scores, classes, iou=0.7, top_k=200, max_det=300),
            lambda: ref.fast_nms_by_label(boxes, scores, classes, 0.7, 200, 300),
        ),
        "matrix_nms": (
            lambda: _core.matrix_nms(boxes, scores, classes, max_det=300, filter_thr=0.001),
            lambda: ref.box_matrix_nms(boxes, classes, scores, 0.001, -1, 300),
        ),
        "mask_nms": (
            lambda: _core.mask_nms(*crops, s300, c300, iou=0.7, max_det=300),
            lambda: ref.mask_nms(dense, s300, c300, 0.7, 300),
        ),
        "mask_matrix_nms": (
            lambda: _core.mask_matrix_nms(*crops, s300, c300, max_det=300, filter_thr=0.001),
            lambda: ref.mask_matrix_nms(dense, c300, s300, 0.001, -1, 300),
        ),
    }


def core_vs_reference(outputs: list[list[np.ndarray]], repeats: int) -> dict[str, dict[str, float]]:
    """Median per-image time of each core function and of its numpy transcription on the same candidates."""
    times: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("fast_nms", "matrix_nms", "mask_nms", "mask_matrix_nms")
    }
    for pred, protos in outputs:
        c = _core.decode_yolo(pred, 80, 0.001, 1.0, 30000, 30000, False)  # every candidate (IoU 1)
        boxes, scores, classes = c.boxes, c.scores, c.class_ids
        top = slice(0, 300)
        pboxes = np.clip(boxes[top] / 4, 0, 160).astype(np.float32)
        ms = _core.assemble_masks(protos, c.coefficients[top], pboxes, (160, 160), (160, 160), drop_empty=False)
        dense = InstanceMasks(ms.rects, ms.offsets, ms.bits, (160, 160)).dense()
        crops = (ms.rects, ms.offsets, ms.bits)
        pairs = _pairs(boxes, scores, classes, crops, dense, scores[top], classes[top])
        for name, (core_fn, ref_fn) in pairs.items():
            times[name][0].append(median_ms(core_fn, repeats, True))
            times[name][1].append(median_ms(ref_fn, max(1, repeats // 2), False))
    out = {}
    for name, (core_t, ref_t) in times.items():
        core_ms, ref_ms = statistics.median(core_t), statistics.median(ref_t)
        out[name] = {
            "core_ms": round(core_ms, 4),
            "reference_ms": round(ref_ms, 3),
            "speedup": round(ref_ms / core_ms, 1),
        }
        print(f"{name:16s} core {core_ms:8.3f} ms  numpy reference {ref_ms:8.2f} ms  x{ref_ms / core_ms:.0f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "yolov8n-seg.onnx")
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "coco-val-mini")
    ap.add_argument("--limit", type=int, default=0, help="time at most N images (default: all)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per image and setting (default 5)")
    ap.add_argument("--no-map", action="store_true", help="skip the mAP runs")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()

    model = edgeseg.load(args.model)
    images = list_images(args.data / "images")
    if args.limit:
        images = images[: args.limit]
    result: dict = {
        "model": args.model.name,
        "images": len(images),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "versions": versions(("edgeseg", "numpy", "onnxruntime")),
        "git": git_state(ROOT),
        "command": "python benchmarks/nms_variants.py " + " ".join(sys.argv[1:]),
    }
    if not args.no_map:
        result["accuracy_conf0.001"] = accuracy(model, args.data)
    cost, outputs = costs(model, images, args.repeats)
    result["postprocess_ms_median_per_image"] = cost
    for kind in KINDS:
        print(f"{kind:7s} postprocess ms/img: " + ", ".join(f"conf {c}: {cost[f'{kind}@{c}']:.2f}" for c in CONFS))
    result["core_vs_numpy_reference"] = core_vs_reference(outputs, args.repeats)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
